"""The fleet file: frozen pydantic models, YAML + `${VAR}` interpolation + `SGLFLEET_*` overrides.

Built once at start-up (`load_config`) and passed down explicitly; nothing reads the
environment after that. Every default lives in these models, and the CLI points at them.

    base.py     the frozen base model, shared names and checks
    gateway.py  `gateway:`  (address, keys, server limits, health, breaker, retries, timeouts, memory)
    models.py   `models:`   (engines, workers, policies, capabilities, restart, hooks, PD groups)
    routes.py   `routes:`   (virtual models and task routes)
    loader.py   FleetConfig, ConfigError, interpolation, overrides, load_config
"""

from sglfleet.config.base import (
    BUILTIN_MODEL,
    DEFAULT_MODEL_NAME,
    ENV_PREFIX,
    EngineName,
    Frozen,
    PolicyName,
    Priority,
    check_urls,
)
from sglfleet.config.gateway import (
    BreakerConfig,
    GatewayConfig,
    HealthConfig,
    HeartbeatConfig,
    MemoryConfig,
    RetryConfig,
    ServerLimits,
    TimeoutConfig,
)
from sglfleet.config.loader import (
    ConfigError,
    FleetConfig,
    apply_env_overrides,
    interpolate,
    load_config,
    parse_config,
)
from sglfleet.config.models import (
    CacheAwareConfig,
    Capabilities,
    HooksConfig,
    KubernetesDiscoveryConfig,
    KvEventsConfig,
    ModelConfig,
    ModelTimeouts,
    RestartConfig,
    SourceConfig,
    WorkerGroupConfig,
)
from sglfleet.config.routes import RouteMatch, TaskRoute, VirtualModel

__all__ = [
    "BUILTIN_MODEL", "DEFAULT_MODEL_NAME", "ENV_PREFIX", "BreakerConfig", "CacheAwareConfig",
    "Capabilities", "ConfigError", "EngineName", "FleetConfig", "Frozen", "GatewayConfig",
    "HealthConfig", "HeartbeatConfig", "HooksConfig", "KubernetesDiscoveryConfig", "KvEventsConfig", "MemoryConfig",
    "ModelConfig", "ModelTimeouts",
    "PolicyName", "Priority", "RestartConfig", "RetryConfig", "RouteMatch", "SourceConfig",
    "ServerLimits", "TaskRoute", "TimeoutConfig", "VirtualModel", "WorkerGroupConfig", "apply_env_overrides",
    "check_urls", "interpolate", "load_config", "parse_config",
]
