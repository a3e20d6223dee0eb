"""Model pools: the workers serving one model, the model's backpressure and deadlines.

`Pool` is what every model has; `ModelPool` picks one worker per request with its policy,
`PDPool` (routing/pd.py) picks a prefill/decode pair with two policies. Neither inherits
the other's selector.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sglfleet.config import ModelConfig, TimeoutConfig
from sglfleet.core.errors import ModelFailed, NoWorkerAvailable
from sglfleet.core.exchange import Deadlines
from sglfleet.core.route import Decision, RouteContext
from sglfleet.core.worker import Worker
from sglfleet.engines.base import Engine
from sglfleet.engines.registry import get_engine
from sglfleet.routing.factory import make_policy
from sglfleet.routing.limiter import Limiter
from sglfleet.routing.policies import Policy

# Called before routing when no worker is eligible: may start the model (on-demand load) and
# wait for it, bounded; raises an Unavailable subclass when it cannot.
Loader = Callable[["Pool"], Awaitable[None]]


def resolve_deadlines(engine: Engine, gateway: TimeoutConfig, model: ModelConfig) -> Deadlines:
    """The model's own `timeouts:` first, then `gateway.timeouts`, then the engine kind's."""
    own = model.timeouts
    return Deadlines(
        first_byte_s=own.first_byte_s or gateway.first_byte_s or engine.first_byte_s,
        stall_s=own.stall_s or gateway.stall_s or engine.stall_s,
        total_s=own.total_s or gateway.total_s,
    )


class Pool:
    def __init__(self, cfg: ModelConfig, *, timeouts: TimeoutConfig | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.engine: Engine = get_engine(cfg.engine)
        self.deadlines = resolve_deadlines(self.engine, timeouts or TimeoutConfig(), cfg)
        self.workers: list[Worker] = []
        self.limiter = Limiter(cfg.max_concurrency, cfg.max_queue, cfg.queue_timeout_s)
        self.loader: Loader | None = None
        self.failure: str | None = None  # set while the model's crash breaker is open (FATAL)
        self.status: str = "READY" if not cfg.managed else "STOPPED"

    @property
    def policies(self) -> tuple[Policy, ...]:
        return ()

    def add(self, worker: Worker) -> None:
        self.workers.append(worker)
        for policy in self.policies:
            watch = getattr(policy, "watch", None)  # kv_events: subscribe to its KV events now
            if watch is not None:
                watch(worker)

    def remove(self, worker: Worker) -> None:
        self.workers.remove(worker)
        for policy in self.policies:
            policy.forget(worker)

    def has_eligible(self) -> bool:
        return any(w.eligible for w in self.workers)

    async def ensure_ready(self) -> None:
        if self.failure:
            raise ModelFailed(f"model {self.name!r} is failing: {self.failure}", retry_after_s=30)
        if self.loader is not None and not self.has_eligible():  # external pools: no scan
            await self.loader(self)

    def unavailable(self, detail: str) -> NoWorkerAvailable | ModelFailed:
        if self.failure:
            return ModelFailed(f"model {self.name!r} is failing: {self.failure}", retry_after_s=30)
        if self.status in ("STARTING", "BACKOFF"):
            detail = f"it is {self.status.lower()}"
        return NoWorkerAvailable(f"no worker available for model {self.name!r}: {detail}")


class ModelPool(Pool):
    def __init__(self, cfg: ModelConfig, policy: Policy | None = None, *,
                 timeouts: TimeoutConfig | None = None) -> None:
        super().__init__(cfg, timeouts=timeouts)
        self.policy = policy or make_policy(cfg.policy, cfg.cache_aware, model=cfg)

    @property
    def policies(self) -> tuple[Policy, ...]:
        return (self.policy,)

    def select(self, ctx: RouteContext) -> Decision:
        decision = self.policy.select(self.workers, ctx)
        if decision is None:
            n = len(self.workers)
            raise self.unavailable(f"all {n} workers are stalled, draining or excluded" if n else "it has no workers")
        return decision
