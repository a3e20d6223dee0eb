"""All supervised replicas of one model, summarised for the router and the admin API.

A ModelSupervisor is also the orchestrator's view of a model (`orchestrator.Member`): its
priority, whether it holds memory, whether it is idle, its estimated and measured footprint.
Without an orchestrator every start goes ahead (the pre-orchestrator behaviour).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sglfleet.config import GatewayConfig, ModelConfig
from sglfleet.core.errors import ModelFailed, Unavailable
from sglfleet.core.worker import Worker
from sglfleet.engines.base import Engine
from sglfleet.routing.pool import ModelPool
from sglfleet.supervisor.managed import ManagedWorker
from sglfleet.supervisor.memory import Device, measure_tree
from sglfleet.supervisor.orchestrator import MemoryOrchestrator
from sglfleet.supervisor.rehydrate import ProgressText, rehydrate
from sglfleet.supervisor.sleep import release, wake
from sglfleet.supervisor.states import State

# The model's state is its best replica's, in this order.
_RANK = [State.READY, State.UNHEALTHY, State.STARTING, State.BACKOFF, State.SLEEPING, State.STOPPING, State.FATAL,
         State.STOPPED]
# States in which a replica holds (or is about to hold) memory (a sleeping one: what it kept).
_HOLDING = frozenset({State.STARTING, State.READY, State.UNHEALTHY, State.BACKOFF, State.STOPPING, State.SLEEPING})


@dataclass(frozen=True, slots=True)
class LoadStatus:
    """Where a model's load stands (cold-start holds show it; api/holds.py)."""

    phase: str  # preparing | fetching | hooks | spawning | loading | warming up | waking | backoff | stopping
    progress: float | None  # 0..1 (a download's fraction, else elapsed / the learned load time)
    eta_s: float | None  # seconds left, from previous loads of this model (None: never loaded yet)
    elapsed_s: float


class ModelSupervisor:
    def __init__(self, pool: ModelPool, engine: Engine, *, session: aiohttp.ClientSession,
                 log_dir: Path, breaker_cfg: Any, model_dir: Path | str | None = None,
                 orchestrator: MemoryOrchestrator | None = None) -> None:
        self.pool = pool
        self.engine = engine
        self.session = session
        self.model_dir = Path(model_dir or GatewayConfig.model_fields["model_dir"].default).expanduser()
        self.replicas: list[ManagedWorker] = []
        self.last_start = 0.0
        self.note = ""  # why the model is not loaded (deferred at boot, evicted, refused)
        self.orchestrator: MemoryOrchestrator | None = None
        self._launch_cfg: ModelConfig = pool.cfg  # pool.cfg with a rehydrated model_path
        self._fetch_lock = asyncio.Lock()
        self.load_times: deque[float] = deque(maxlen=5)  # seconds from start to READY, last loads
        self.wake_times: deque[float] = deque(maxlen=5)
        self._was_ready: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.restart_lock = asyncio.Lock()  # one rolling restart at a time (supervisor/rolling.py)
        for i in range(pool.cfg.replicas):
            w = Worker.create(pool.name, "http://127.0.0.1:0", breaker_cfg, managed=True,
                              api_key=pool.cfg.api_key)
            w.ready = False
            pool.add(w)
            self.replicas.append(ManagedWorker(pool.cfg, engine, w, i, session=session, log_dir=log_dir,
                                               on_change=self._on_change, prepare=self._prepare))
        pool.loader = self.load_on_demand
        if orchestrator is not None:
            self.attach(orchestrator)
        self._refresh()

    def attach(self, orchestrator: MemoryOrchestrator) -> None:
        self.orchestrator = orchestrator
        orchestrator.attach(self)

    # -- state --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.pool.name

    @property
    def state(self) -> State:
        states = {r.state for r in self.replicas}
        return next((s for s in _RANK if s in states), State.STOPPED)

    @property
    def loading(self) -> bool:
        """A start is in progress (what `sglfleet serve` shows progress for)."""
        return any(r.state in (State.STARTING, State.BACKOFF) for r in self.replicas)

    def _on_change(self, replica: ManagedWorker) -> None:
        if replica.state is State.READY and replica.replica not in self._was_ready:
            self._was_ready.add(replica.replica)
            if replica.progress.started_at:
                took = time.time() - replica.progress.started_at
                (self.wake_times if replica.progress.phase == "waking" else self.load_times).append(took)
        elif replica.state is not State.READY:
            self._was_ready.discard(replica.replica)
        self._refresh()

    def load_status(self) -> LoadStatus:
        """The most advanced replica's load: phase, progress and the learned time left."""
        now = time.time()
        live = [r for r in self.replicas if r.state is not State.READY and r.progress.started_at]
        if not live:  # not started yet: a whole load ahead (a sleeping model: a wake)
            history = self.wake_times if self.state is State.SLEEPING else self.load_times
            expected = sum(history) / len(history) if history else None
            return LoadStatus(self.state.value.lower(), 0.0 if expected else None, expected, 0.0)
        r = max(live, key=lambda x: (x.progress.fraction or 0.0, now - x.progress.started_at))
        elapsed = now - r.progress.started_at
        history = self.wake_times if r.progress.phase == "waking" else self.load_times
        expected = sum(history) / len(history) if history else None
        eta = max(1.0, expected - elapsed) if expected is not None else None
        progress = r.progress.fraction
        if progress is None and expected:
            progress = min(0.99, elapsed / expected)
        return LoadStatus(r.progress.phase, progress, eta, elapsed)

    def _refresh(self) -> None:
        state = self.state
        self.pool.status = state.value
        if state is State.FATAL:
            reasons = {r.lifecycle.reason for r in self.replicas if r.state is State.FATAL}
            self.pool.failure = "; ".join(sorted(reasons))
        else:
            self.pool.failure = None

    # -- orchestrator.Member ------------------------------------------------------------------
    @property
    def priority(self) -> str:
        return self.pool.cfg.priority

    @property
    def keep_alive_s(self) -> float | None:
        return self.pool.cfg.keep_alive_s

    def holds_memory(self) -> bool:
        return any(r.state in _HOLDING or r.running for r in self.replicas)

    def is_ready(self) -> bool:
        return self.state is State.READY

    def is_idle(self) -> bool:
        lim = self.pool.limiter
        return lim.active == 0 and lim.queued == 0 and all(w.inflight == 0 for w in self.pool.workers)

    def activity(self) -> int:
        return sum(w.processed + w.inflight for w in self.pool.workers)

    def estimate_bytes(self) -> int:
        cfg = self._launch_cfg
        one = cfg.memory_bytes or self.engine.estimate_bytes(cfg)
        if one is None and cfg.source is not None and cfg.source.size_bytes:
            one = int(cfg.source.size_bytes * 1.2)
        return (one or 0) * cfg.replicas

    def measure_bytes(self, device: Device) -> int | None:
        got = [measure_tree(r.process.pid, device) for r in self.replicas
               if r.process is not None and r.process.pid is not None and r.process.returncode is None]
        known = [g for g in got if g]
        return sum(known) if known else None

    def start_now(self, reason: str = "start") -> None:
        self.note = ""
        self.last_start = time.time()
        for r in self.replicas:
            if r.state is State.SLEEPING:
                self._spawn(wake(r))
            else:
                r.start()

    # -- warm sleep (supervisor/sleep.py) ------------------------------------------------------
    def can_sleep(self) -> bool:
        return self.pool.cfg.evict == "sleep" and self.engine.memory_saver

    def asleep(self) -> bool:
        return self.state is State.SLEEPING

    async def sleep(self, reason: str = "asleep") -> bool:
        """Release every ready replica's memory; a replica that cannot sleep is stopped."""
        results = await asyncio.gather(*(release(r, reason) for r in self.replicas if r.state is State.READY))
        if not all(results):
            await self.stop(f"{reason} (sleep refused by the engine)")
            return False
        self.note = reason
        self._refresh()
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- admin interface ----------------------------------------------------------------------
    def start(self) -> None:
        """Start every replica, unless the orchestrator says the model does not fit now
        (then it stays STOPPED and loads on demand)."""
        if self.orchestrator is not None and not self.holds_memory():
            deferred = self.orchestrator.boot_check(self)
            if deferred:
                self.note = f"not loaded: {deferred}"
                return
        self.start_now()

    async def wait_ready(self, timeout_s: float) -> bool:
        """True once any replica is READY; False on timeout, when all are FATAL, or when the
        model was not started (deferred by the orchestrator)."""
        deadline = time.monotonic() + timeout_s
        await asyncio.sleep(0)  # let freshly started replicas leave STOPPED
        while time.monotonic() < deadline:
            if any(r.state is State.READY for r in self.replicas):
                return True
            if all(r.state is State.FATAL for r in self.replicas) or self.state is State.STOPPED:
                return False
            await asyncio.sleep(0.1)
        return False

    async def stop(self, reason: str = "admin stop") -> None:
        await asyncio.gather(*(r.stop(reason) for r in self.replicas))
        self.note = reason
        self._refresh()

    def reset(self) -> None:
        """Operator reset of the crash circuit breaker: FATAL replicas go to STOPPED and the
        model starts again if it fits (else it loads on demand)."""
        fatal = False
        for r in self.replicas:
            r.crashes.reset()
            if r.state is State.FATAL:
                r.lifecycle.transition(State.STOPPED, "breaker reset by operator")  # FATAL -> STOPPED
                fatal = True
        self._refresh()
        if fatal:
            self.start()

    def maybe_cool_down(self) -> None:
        """Housekeeping, about once a second: end expired FATAL cool-downs, let the
        orchestrator measure the model and apply keep_alive."""
        now = time.time()
        for r in self.replicas:
            cd = r.policy.fatal_cooldown_s
            if r.state is State.FATAL and cd is not None and now - r.fatal_since >= cd:
                r.crashes.reset()
                r.lifecycle.transition(State.STOPPED, f"breaker cool-down ({cd:g}s) ended")  # FATAL -> STOPPED
                self.start()
        if self.orchestrator is not None:
            self.orchestrator.tick(self)

    async def load_on_demand(self, pool: ModelPool) -> None:
        self.maybe_cool_down()
        if self.state is State.FATAL:
            raise ModelFailed(f"model {pool.name!r} is failing: {pool.failure}", retry_after_s=30)
        wait_s = min(pool.cfg.queue_timeout_s, pool.cfg.restart.startup_timeout_s)
        deadline = time.monotonic() + wait_s
        while self.state is State.STOPPING and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # an eviction or unload is finishing; start after it
        if self.state in (State.STOPPED, State.SLEEPING):  # (a sleeping one wakes: start_now)
            if self.orchestrator is not None:
                await self.orchestrator.load(self, max(0.0, deadline - time.monotonic()))
            else:
                self.start_now("on demand")
        if not await self._wait_serving(deadline):
            if self.state is State.FATAL:
                raise ModelFailed(f"model {pool.name!r} failed to start: {pool.failure}", retry_after_s=30)
            raise Unavailable(f"model {pool.name!r} is {self.state.value.lower()}; not ready after "
                              f"{wait_s:g}s", retry_after_s=10)

    def serving(self) -> bool:
        """A replica is ready and not draining (a rolling restart drains one at a time)."""
        return any(w.ready and not w.draining for w in self.pool.workers)

    async def _wait_serving(self, deadline: float) -> bool:
        await asyncio.sleep(0)  # let freshly started replicas leave STOPPED
        while time.monotonic() < deadline:
            if self.serving():
                return True
            if all(r.state is State.FATAL for r in self.replicas):
                return False
            if self.state is State.STOPPED and not self.restart_lock.locked():
                return False  # nobody is starting it (deferred, unloaded)
            await asyncio.sleep(0.05)
        return False

    async def _prepare(self, replica: ManagedWorker) -> ModelConfig:
        """Rehydrate the model files once for all replicas (under a lock), with progress."""
        async with self._fetch_lock:
            progress = ProgressText()

            def report(done: int, total: int | None) -> None:
                progress(done, total)
                replica.progress.phase = "fetching"
                replica.progress.detail = progress.text()
                replica.progress.fraction = progress.fraction

            self._launch_cfg = await rehydrate(self._launch_cfg, self.model_dir, session=self.session,
                                               progress=report)
        return self._launch_cfg

    # -- reporting ----------------------------------------------------------------------------
    def startup_figures(self, r: ManagedWorker) -> dict[str, Any] | None:
        """An SGLang engine's logged memory figures next to the planner's prediction."""
        read = getattr(self.engine, "startup_figures", None)
        return read(self._launch_cfg, r.log_path) if read is not None else None

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state.value,
            "note": self.note or None,
            "replicas": [
                {
                    "replica": r.replica, "state": r.state.value, "reason": r.lifecycle.reason,
                    "since": r.lifecycle.since, "url": r.worker.url, "worker": r.worker.id,
                    "pid": r.process.pid if r.process else None,
                    "phase": r.progress.phase, "phase_detail": r.progress.detail,
                    "progress": r.progress.fraction,
                    "elapsed_s": round(time.time() - r.progress.started_at, 1) if r.progress.started_at else None,
                    "restarts": r.crashes.total, "last_crash": r.crashes.last_reason or None,
                    "hooks": [h.to_dict() for h in r.hook_results],
                    "log": str(r.log_path),
                    "startup": self.startup_figures(r),
                    # the engine's own last words while it is not serving (loading, crashed)
                    "log_tail": r.log_tail(5) if r.state is not State.READY else [],
                }
                for r in self.replicas
            ],
        }
        if self.orchestrator is not None:
            out["memory"] = self.orchestrator.model_snapshot(self)
        else:
            out["memory"] = {"estimated_bytes": self.estimate_bytes() or None}
        return out
