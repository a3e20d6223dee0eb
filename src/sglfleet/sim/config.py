"""Frozen configuration of a simulated worker: cost model, capacity, role and faults.

A `SimConfig` is built once (from CLI flags or by a test) and passed down; per-worker
variants use `dataclasses.replace`. Runtime fault changes (`POST /sim/faults`) swap the
worker's `FaultConfig` for a new frozen one, never mutate it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["both", "prefill", "decode"]
CrashMode = Literal["drop", "exit"]

ROLES: tuple[Role, ...] = ("both", "prefill", "decode")
CRASH_MODES: tuple[CrashMode, ...] = ("drop", "exit")


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    """Faults a worker injects; all off by default.

    error_rate:          fraction of generation requests answered with an error status.
    error_codes:         statuses to choose from (uniformly, seeded) for those errors.
    spike_rate/spike_ms: fraction of generation requests delayed by spike_ms before queueing.
    hang:                accept every request (except /sim/*) and never answer; keep the socket.
    crash_after_tokens:  a request that reaches this many output tokens crashes the worker:
                         crash_mode "drop" closes that connection mid-stream, "exit" ends
                         the whole process (every worker it hosts) with exit status 70.
    slow_start_s:        /health, /health_generate and generation answer 503 for this long
                         after start (or after the fault is set at run time).
    flap_period_s:       /health alternates healthy/unhealthy every flap_period_s seconds.
    """

    error_rate: float = 0.0
    error_codes: tuple[int, ...] = (500,)
    spike_rate: float = 0.0
    spike_ms: float = 0.0
    hang: bool = False
    crash_after_tokens: int | None = None
    crash_mode: CrashMode = "drop"
    slow_start_s: float = 0.0
    flap_period_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("error_rate", "spike_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        for name in ("spike_ms", "slow_start_s", "flap_period_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not self.error_codes or any(not 100 <= c <= 599 for c in self.error_codes):
            raise ValueError(f"error_codes must be HTTP statuses, got {self.error_codes}")
        if self.crash_after_tokens is not None and self.crash_after_tokens < 0:
            raise ValueError("crash_after_tokens must be >= 0")
        if self.crash_mode not in CRASH_MODES:
            raise ValueError(f"crash_mode must be one of {CRASH_MODES}")

    @property
    def any_request_fault(self) -> bool:
        """True when a generation request may be affected (cheap check on the hot path)."""
        return bool(
            self.error_rate
            or self.spike_rate
            or self.hang
            or self.slow_start_s
            or self.crash_after_tokens is not None
        )

    def updated(self, changes: dict[str, Any]) -> FaultConfig:
        """A copy with `changes` applied (JSON values); unknown names raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        fixed = dict(changes)
        if "error_codes" in fixed:
            codes = fixed["error_codes"]
            fixed["error_codes"] = tuple(
                int(c) for c in (codes if isinstance(codes, list) else [codes])
            )
        return dataclasses.replace(self, **fixed)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["error_codes"] = list(self.error_codes)
        return data


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """One simulated SGLang worker. Times are simulated milliseconds, scaled by time_scale.

    Cost model (normal mode): a prefill step costs prefill_base_ms + prefill_ms_per_token x
    uncached prompt tokens of the batch; a decode step costs decode_step_ms +
    decode_ms_per_req x running requests. A PD decode worker pays kv_transfer_ms_per_token
    per prompt token instead of prefill. Fixed mode (ttft_ms or itl_ms set) ignores batching:
    each request waits ttft_ms, then itl_ms per further token. Fast mode (fast=True) streams
    with no delay and no engine at all.
    """

    model_name: str = "sim"
    role: Role = "both"
    seed: int = 0
    # capacity
    cache_tokens: int = 131_072  # KV pool size in tokens (radix cache + running requests)
    max_running: int = 256
    context_len: int = 32_768
    max_prefill_tokens: int = 16_384  # prompt tokens admitted per prefill step (>= 1 request)
    default_max_tokens: int = 128
    eos_rate: float = 0.0  # per-token chance of stopping early unless ignore_eos
    # cost model
    prefill_base_ms: float = 2.0
    prefill_ms_per_token: float = 0.05
    decode_step_ms: float = 10.0
    decode_ms_per_req: float = 0.1
    kv_transfer_ms_per_token: float = 0.005
    time_scale: float = 1.0
    # fixed timing and fast modes
    ttft_ms: float | None = None
    itl_ms: float | None = None
    fast: bool = False
    # PD
    bootstrap_port: int | None = None  # first worker's extra bootstrap port; None = HTTP port
    bootstrap_timeout_s: float = 30.0
    # KV cache: page size (SGLang's --page-size) and KV events (SGLang's --kv-events-config JSON)
    page_size: int = 1
    kv_events_config: str | None = None
    # memory saver (/release_memory_occupation, /resume_memory_occupation; sim/memory.py)
    memory_mb: int = 0  # RAM really held, so a release shows in the process's RSS
    release_ms: float = 200.0
    resume_ms: float = 1500.0
    # faults at start
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if ":" in self.model_name or not self.model_name:
            raise ValueError("model_name must be non-empty and contain no ':'")
        if self.kv_events_config is not None:
            from sglfleet.sim.kv_events import KvEventsConfig

            KvEventsConfig.parse(self.kv_events_config)
        for name in ("cache_tokens", "max_running", "context_len", "max_prefill_tokens", "page_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        if not 0.0 <= self.eos_rate <= 1.0:
            raise ValueError("eos_rate must be within [0, 1]")

    @property
    def fixed_timing(self) -> bool:
        return self.ttft_ms is not None or self.itl_ms is not None

    def seconds(self, sim_ms: float) -> float:
        """Real seconds for a simulated duration in milliseconds."""
        return sim_ms * self.time_scale / 1000.0
