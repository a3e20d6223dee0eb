"""The `models:` section: engines, workers, policies, capabilities, restart policy, hooks."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from sglfleet.config.base import BUILTIN_MODEL, EngineName, Frozen, PolicyName, Priority, check_urls
from sglfleet.sglang.profile import SGLangProfile


class CacheAwareConfig(Frozen):
    """SGLang router 0.3.2 code defaults; `max_tree_chars` is a per-model character budget."""

    cache_threshold: float = Field(0.3, ge=0, le=1)
    balance_abs_threshold: int = Field(64, ge=0)
    balance_rel_threshold: float = Field(1.5, ge=1)
    max_tree_chars: int = Field(8 * 1024 * 1024, ge=1024)
    # What the router may believe one worker caches (SGLang's per-worker max_tree_size); set it
    # near the engine's KV capacity (tokens x ~4 chars) so predicted hits are real hits.
    max_chars_per_worker: int | None = Field(None, ge=256)
    # Not in SGLang: on a prefix hit, if the holder has more than this many requests in flight
    # beyond the least loaded worker, route by load instead (None = SGLang's behaviour). Useful
    # for engines that serve one request at a time (llama.cpp), where a busy holder means a queue.
    affinity_slack: int | None = Field(None, ge=0)


class KvEventsConfig(Frozen):
    """Policy `kv_events`: routing on the engines' own KV-cache events (docs/routing.md).

    tokenizer: `sim`, or a model directory / tokenizer.json (HF tokenizers); default: model_path.
    block_size: the engines' page size; default: their /get_server_info `page_size`, else the
    first event's. endpoints / replay_endpoints: ZeroMQ addresses per url (in url order); by
    default each worker's `kv_events_config` from /get_server_info (a `*` host = its host)."""

    tokenizer: str | None = None
    block_size: int | None = Field(None, ge=1)
    endpoints: tuple[str, ...] = ()
    replay_endpoints: tuple[str | None, ...] = ()
    topic: str = ""
    overlap_weight: float = Field(2.0, ge=0)  # 1.0 (Dynamo's default) spread groups too much here
    # a worker above balance_ratio x the mean in-flight count + 1 is picked only when all are
    balance_ratio: float | None = Field(None, ge=1)
    stale_after_s: float = Field(10.0, gt=0)


class RestartConfig(Frozen):
    """Restart policy as data (supervisord's vocabulary): what counts as a failed start, the
    backoff schedule, and the crash circuit breaker (too many crashes in a window -> FATAL)."""

    autorestart: Literal["always", "on-failure", "never"] = "on-failure"
    min_uptime_s: float = Field(10.0, ge=0)
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    backoff_multiplier: float = Field(2.0, ge=1)
    flap_max_crashes: int = Field(5, ge=1)
    flap_window_s: float = Field(300.0, gt=0)
    fatal_cooldown_s: float | None = Field(600.0, gt=0)
    stop_grace_s: float = Field(10.0, ge=0)
    startup_timeout_s: float = Field(600.0, gt=0)
    liveness_interval_s: float = Field(10.0, gt=0)
    liveness_timeout_s: float = Field(30.0, gt=0)
    liveness_failures: int = Field(2, ge=1)


class ModelTimeouts(Frozen):
    """Per-model deadlines; unset ones come from `gateway.timeouts`, then the engine kind."""

    first_byte_s: float | None = Field(None, gt=0)
    stall_s: float | None = Field(None, gt=0)
    total_s: float | None = Field(None, gt=0)


class MigrationConfig(Frozen):
    """Mid-stream migration (docs/reliability.md): a stream whose worker fails after bytes
    were sent continues on another worker, at most `max_attempts` times (0 = never)."""

    max_attempts: int = Field(2, ge=0, le=10)


class HoldConfig(Frozen):
    """Cold-start holds: requests that arrive while the model loads (on demand, after a crash,
    waking, restarting) wait up to `max_s`, streams with an SSE comment every `comment_interval_s`
    until the first token. Past the bound: 503 with Retry-After from the load's learned ETA."""

    max_s: float | None = Field(None, gt=0)  # None: min(queue_timeout_s, restart.startup_timeout_s)
    comment_interval_s: float = Field(2.0, gt=0, le=60)
    comments: bool = True


class HooksConfig(Frozen):
    """Host preparation commands around an engine start (seed 001: swap on, OOM killer paused).
    sglfleet runs them with a timeout and reports failures; it hard-codes none of them."""

    before_start: tuple[str, ...] = ()
    after_ready: tuple[str, ...] = ()
    after_stop: tuple[str, ...] = ()
    timeout_s: float = Field(60.0, gt=0)
    fail_start_on_error: bool = False


class SourceConfig(Frozen):
    """Where a missing model file/dir is fetched from before start (rehydration):
    `hf:org/repo` (huggingface_hub), an http(s) URL, or a local path."""

    uri: str = Field(min_length=1)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    size_bytes: int | None = Field(None, ge=0)
    revision: str | None = None


class KubernetesDiscoveryConfig(Frozen):
    namespace: str = "default"
    selector: str = Field(min_length=1)  # label selector, e.g. "app=sglang,model=qwen"
    port: int = Field(30000, ge=1, le=65535)
    api_url: str | None = None  # default: in-cluster (KUBERNETES_SERVICE_HOST)
    role: Literal["both", "prefill", "decode"] = "both"
    # prefill pods: bootstrap port when the pod has no `sglfleet.io/bootstrap-port` annotation
    bootstrap_port: int | None = Field(None, ge=1, le=65535)


class WorkerGroupConfig(Frozen):
    """One side of a prefill/decode disaggregated model: its workers (`urls`, or Kubernetes
    `discovery`) and their policy."""

    urls: tuple[str, ...] = ()
    discovery: KubernetesDiscoveryConfig | None = None
    policy: PolicyName = "least_load"
    # SGLang's --disaggregation-bootstrap-port of each prefill worker, in url order (None = 8998)
    bootstrap_ports: tuple[int | None, ...] = ()

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return check_urls(v)

    @model_validator(mode="after")
    def _one_source_and_ports(self) -> WorkerGroupConfig:
        if bool(self.urls) == (self.discovery is not None):
            raise ValueError("a worker group needs either urls or discovery (one of them)")
        if self.bootstrap_ports and len(self.bootstrap_ports) != len(self.urls):
            raise ValueError("bootstrap_ports needs one entry per url")
        return self


class Capabilities(Frozen):
    embedding: bool = False
    tools: bool = False
    vision: bool = False
    thinking: bool = False
    context_window: int | None = Field(None, ge=1)


class ModelConfig(Frozen):
    name: str = Field(min_length=1, max_length=200)
    aliases: tuple[str, ...] = ()
    engine: EngineName = "llamacpp"
    model_path: str | None = None
    urls: tuple[str, ...] = ()
    api_key: str | None = None
    upstream_model: str | None = None
    replicas: int = Field(1, ge=1, le=256)
    policy: PolicyName = "cache_aware"
    capabilities: Capabilities = Capabilities()
    priority: Priority = "normal"
    keep_alive_s: float | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, ge=1)
    max_queue: int = Field(256, ge=0)
    queue_timeout_s: float = Field(60.0, gt=0)
    n_ctx: int = Field(4096, ge=128)
    n_threads: int | None = Field(None, ge=1)
    prompt_cache_mb: int = Field(0, ge=0)
    engine_args: tuple[str, ...] = ()
    sglang: SGLangProfile | None = None  # engine: sglang — launch profile (host/port/name set by sglfleet)
    preset: str | None = None  # engine: sglang — a shipped preset (`sglfleet presets`) as the base profile
    cache_aware: CacheAwareConfig = CacheAwareConfig()
    kv_events: KvEventsConfig = KvEventsConfig()
    restart: RestartConfig = RestartConfig()
    timeouts: ModelTimeouts = ModelTimeouts()
    hooks: HooksConfig = HooksConfig()
    migration: MigrationConfig = MigrationConfig()
    hold: HoldConfig = HoldConfig()
    # freeing memory for another model: stop the engine, or (SGLang) release its GPU memory and
    # keep the process (`/release_memory_occupation`; woken on the next request)
    evict: Literal["stop", "sleep"] = "stop"
    source: SourceConfig | None = None
    memory_bytes: int | None = Field(None, ge=0)  # footprint override (else planner / file size)
    discovery: KubernetesDiscoveryConfig | None = None
    prefill: WorkerGroupConfig | None = None  # prefill/decode disaggregation (external workers)
    decode: WorkerGroupConfig | None = None

    @field_validator("name")
    @classmethod
    def _no_colon(cls, v: str) -> str:
        if ":" in v:
            raise ValueError(
                f"served model name {v!r} contains ':'; SGLang reads 'base:adapter' as a LoRA "
                f"adapter. Use {v.replace(':', '-')!r} as the name and list {v!r} under aliases"
            )
        if v.strip() != v or any(c in v for c in "\r\n\t"):
            raise ValueError("model name must not contain whitespace at its ends or control characters")
        return v

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return check_urls(v)

    @model_validator(mode="after")
    def _engine_needs(self) -> ModelConfig:
        if (self.prefill is None) != (self.decode is None):
            raise ValueError("a disaggregated model needs both prefill and decode worker groups")
        if self.prefill is not None and (self.engine != "external" or self.urls):
            raise ValueError("prefill/decode groups need engine: external and no urls")
        if self.engine == "external" and not (self.urls or self.discovery or self.prefill):
            raise ValueError("engine 'external' needs urls, discovery or prefill/decode groups")
        if self.api_key and any("@" in urlsplit(u).netloc for u in self.all_urls):
            raise ValueError("a worker url carries credentials (user:password@) and api_key is set: use one of "
                             "them (both would send two Authorization headers)")
        if self.policy == "kv_events" and not (self.kv_events.tokenizer or self.model_path):
            raise ValueError("policy kv_events needs kv_events.tokenizer: the model directory (its "
                             "tokenizer.json) or 'sim' for simulated workers")
        if self.engine in ("sglang", "vllm") and not (self.model_path or self.sglang or self.preset or self.urls):
            raise ValueError(f"engine {self.engine!r} needs model_path, sglang: or preset: (or urls)")
        return self

    @property
    def all_urls(self) -> tuple[str, ...]:
        groups = (self.prefill, self.decode)
        return self.urls + tuple(u for g in groups if g is not None for u in g.urls)

    @property
    def managed(self) -> bool:
        """True when sglfleet launches the worker processes itself."""
        return self.engine != "external" and not self.urls

    @property
    def disaggregated(self) -> bool:
        return self.prefill is not None

    @property
    def served_model(self) -> str:
        """The model id sent upstream (engines are started with this alias)."""
        return self.upstream_model or self.name

    @property
    def num_workers(self) -> int:
        return len(self.urls) if self.urls else self.replicas

    @property
    def resolved_model_path(self) -> str:
        return self.model_path or BUILTIN_MODEL
