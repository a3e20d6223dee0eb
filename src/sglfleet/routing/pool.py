"""A model pool: the workers serving one model, their policy and the model's backpressure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sglfleet.config import ModelConfig
from sglfleet.errors import ModelFailed, NoWorkerAvailable
from sglfleet.routing.limiter import Limiter
from sglfleet.routing.policies import Decision, Policy, RouteContext, make_policy
from sglfleet.upstream.worker import Worker

# Called before routing when no worker is eligible: may start the model (on-demand load) and
# wait for it, bounded; raises an Unavailable subclass when it cannot.
Loader = Callable[["ModelPool"], Awaitable[None]]


class ModelPool:
    def __init__(self, cfg: ModelConfig, policy: Policy | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.workers: list[Worker] = []
        self.policy = policy or make_policy(cfg.policy, cfg.cache_aware, model=cfg)
        self.limiter = Limiter(cfg.max_concurrency, cfg.max_queue, cfg.queue_timeout_s)
        self.loader: Loader | None = None
        self.failure: str | None = None  # set while the model's crash breaker is open (FATAL)
        self.status: str = "READY" if not cfg.managed else "STOPPED"

    def add(self, worker: Worker) -> None:
        self.workers.append(worker)
        watch = getattr(self.policy, "watch", None)  # kv_events: subscribe to its KV events now
        if watch is not None:
            watch(worker)

    def remove(self, worker: Worker) -> None:
        self.workers.remove(worker)
        self.policy.forget(worker)

    def has_eligible(self) -> bool:
        return any(w.eligible for w in self.workers)

    async def ensure_ready(self) -> None:
        if self.failure:
            raise ModelFailed(f"model {self.name!r} is failing: {self.failure}", retry_after_s=30)
        if self.loader is not None and not self.has_eligible():  # external pools: no scan
            await self.loader(self)

    def select(self, ctx: RouteContext) -> Decision:
        decision = self.policy.select(self.workers, ctx)
        if decision is None:
            if self.failure:
                raise ModelFailed(f"model {self.name!r} is failing: {self.failure}", retry_after_s=30)
            n = len(self.workers)
            detail = (f"all {n} workers are unhealthy, open-circuit or excluded"
                      if n else "it has no workers")
            if self.status in ("STARTING", "BACKOFF"):
                detail = f"it is {self.status.lower()}"
            raise NoWorkerAvailable(f"no worker available for model {self.name!r}: {detail}")
        return decision
