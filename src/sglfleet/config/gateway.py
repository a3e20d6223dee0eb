"""The `gateway:` section: address, keys, limits, server limits, health, breaker, retries, timeouts, memory."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from sglfleet.config.base import Frozen


class HealthConfig(Frozen):
    """Background probing of every worker (SGLang router 0.3.2 semantics, shorter interval)."""

    interval_s: float = Field(5.0, gt=0)
    timeout_s: float = Field(5.0, gt=0)
    failure_threshold: int = Field(3, ge=1)
    success_threshold: int = Field(2, ge=1)


class BreakerConfig(Frozen):
    """Per-worker circuit breaker: closed -> open -> half-open (limited probes) -> closed."""

    failure_threshold: int = Field(5, ge=1)
    success_threshold: int = Field(2, ge=1)
    open_s: float = Field(30.0, gt=0)
    half_open_max_requests: int = Field(1, ge=1)


class RetryConfig(Frozen):
    """Retries before the first byte reaches the client; `max_attempts` counts all tries."""

    max_attempts: int = Field(3, ge=1)
    initial_backoff_s: float = Field(0.05, ge=0)
    max_backoff_s: float = Field(2.0, ge=0)
    multiplier: float = Field(1.5, ge=1)
    jitter: float = Field(0.2, ge=0, le=1)


class TimeoutConfig(Frozen):
    """Upstream time limits for every model (a model's own `timeouts:` win). Unset deadlines
    take the engine kind's defaults (docs/reliability.md):

    first_byte_s  dispatch -> the first byte of a stream (queueing and prefill included); a
                  worker that misses it is blamed and the request retried elsewhere, since
                  the client has seen nothing yet. A non-streamed answer has no early byte:
                  it is bounded by total_s, and a hung engine is caught by the heartbeat.
    stall_s       the longest gap between two bytes once a stream runs.
    total_s       the whole exchange with one worker.
    """

    connect_s: float = Field(5.0, gt=0)
    first_byte_s: float | None = Field(None, gt=0)
    stall_s: float | None = Field(None, gt=0)
    total_s: float = Field(1800.0, gt=0)


class HeartbeatConfig(Frozen):
    """A cheap GET to every ready worker, whatever its traffic: a worker that misses `misses`
    beats in a row is stalled (hung engine): it gets no new work, and its requests that have
    sent the client nothing yet are retried elsewhere. One answered beat re-admits it."""

    interval_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(2.0, gt=0)
    misses: int = Field(2, ge=1)


class MemoryConfig(Frozen):
    """The host's memory budget for managed engines (GPU via NVML when present, else RAM)."""

    device: Literal["auto", "gpu", "ram"] = "auto"
    budget_bytes: int | None = Field(None, ge=0)  # None = detected total
    soft_limit: float = Field(0.85, gt=0, le=1)  # evict idle lower-priority models above this
    hard_limit: float = Field(0.95, gt=0, le=1)  # refuse loads that would cross this
    psi_full_avg10_max: float | None = Field(10.0, ge=0)  # hold new loads above this pressure


class ServerLimits(Frozen):
    """What one client connection may cost the gateway's HTTP server (docs/reliability.md).

    `max_header_bytes`: request line plus headers; more gets 431 and the connection closes.
    `header_timeout_s`: the whole request head must arrive within this many seconds of the
    connection opening (or, on a kept-alive connection, of the next request's first byte);
    otherwise the socket is closed (slowloris, idle sockets that never send).
    `body_timeout_s`: the whole request body must arrive within this many seconds of the
    handler starting to read it; otherwise 408 and the connection closes.
    `max_connections`: open client connections per gateway process (both ports together);
    one more is answered 503 and closed without reading its request. None = half the
    process's open-file limit (the soft limit is first raised to the hard one), at most 10,000.
    `keep_alive_s`: an idle kept-alive connection is closed after this many seconds (longer
    than the 5 s pool expiry of httpx and the openai SDK, so that the client closes first)."""

    max_header_bytes: int = Field(32 * 1024, ge=1024)
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(60.0, gt=0)
    max_connections: int | None = Field(None, ge=1)
    keep_alive_s: float = Field(15.0, gt=0)


class GatewayConfig(Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    log_dir: str = "~/.cache/sglfleet/logs"
    access_log: bool = True
    routing_key_header: str = "x-session-id"
    startup_timeout_s: float = Field(600.0, gt=0)
    health: HealthConfig = HealthConfig()
    breaker: BreakerConfig = BreakerConfig()
    retry: RetryConfig = RetryConfig()
    timeouts: TimeoutConfig = TimeoutConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    # SIGTERM: stop admitting (503 + Retry-After, /ready 503), let in-flight requests finish for
    # this long, then end the remaining streams with an error event and [DONE].
    shutdown_grace_s: float = Field(30.0, ge=0)
    memory: MemoryConfig = MemoryConfig()
    limits: ServerLimits = ServerLimits()
    mirror_reasoning: bool = False  # copy reasoning_content <-> reasoning for clients that read the other
    ollama_port: int | None = Field(None, ge=1, le=65535)  # also serve the Ollama API here (11434)
    model_dir: str = "~/.cache/sglfleet/models"

    @field_validator("api_keys", "admin_keys")
    @classmethod
    def _non_empty_keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not k for k in v):
            raise ValueError("API keys must be non-empty strings")
        return v

    @property
    def log_path(self) -> Path:
        return Path(self.log_dir).expanduser()
