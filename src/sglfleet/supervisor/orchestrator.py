"""The memory orchestrator: one per host, deciding which managed models may hold memory.

* Budget: GPU memory (NVML) or RAM, or `gateway.memory.budget_bytes`; loads aim to stay under
  the soft limit (idle models are evicted to get there) and are refused above the hard limit.
* Footprint of a model: its estimate (`memory_bytes`, else the engine's estimate) until it has
  been measured; once loaded, the measured RSS / GPU usage of its process trees replaces the
  estimate, and is remembered as the estimate for its next load.
* Eviction: only idle models (nothing in flight or queued), never `critical` ones, never one of
  higher priority than the model being loaded; lowest priority first, then least recently used.
* keep_alive: an idle, non-critical model is unloaded after `keep_alive_s` without requests.
* PSI: while `full avg10` is above `psi_full_avg10_max`, new loads wait (bounded), then 503.
A load that cannot fit is refused with a reason naming the models that hold the memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sglfleet.config import MemoryConfig
from sglfleet.core.errors import Unavailable
from sglfleet.supervisor.memory import (
    PSI_PATH,
    Budget,
    Device,
    Pressure,
    detect_budget,
    device_free_bytes,
    read_psi,
)

log = logging.getLogger("sglfleet.supervisor.memory")

RANK = {"low": 0, "normal": 1, "high": 2, "critical": 3}
MEASURE_EVERY_S = 2.0


class MemoryRefused(Unavailable):
    code = "insufficient_memory"


class MemoryPressure(Unavailable):
    code = "memory_pressure"


class Member(Protocol):
    """What the orchestrator needs from a model (ModelSupervisor implements it)."""

    @property
    def name(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def keep_alive_s(self) -> float | None: ...
    def holds_memory(self) -> bool: ...
    def is_ready(self) -> bool: ...
    def is_idle(self) -> bool: ...
    def activity(self) -> int: ...
    def estimate_bytes(self) -> int: ...
    def measure_bytes(self, device: Device) -> int | None: ...
    def start_now(self, reason: str) -> None: ...
    async def stop(self, reason: str = ...) -> None: ...
    def can_sleep(self) -> bool: ...
    def asleep(self) -> bool: ...
    async def sleep(self, reason: str = ...) -> bool: ...


@dataclass(slots=True)
class Stats:
    last_used: float = 0.0  # orchestrator clock
    activity: int = -1
    measured: int | None = None  # while loaded
    learned: int | None = None  # last measurement, kept after unload
    asleep: int | None = None  # measured after a release (SGLang warm sleep)
    measured_at: float = 0.0
    evictions: int = 0
    note: str = ""


def mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.0f} MB"


class MemoryOrchestrator:
    def __init__(self, cfg: MemoryConfig, *, budget: Budget | None = None, psi_path: Path = PSI_PATH,
                 clock: Callable[[], float] = time.monotonic,
                 free_bytes: Callable[[], int | None] | None = None) -> None:
        self.cfg = cfg
        self.budget = budget or detect_budget(cfg)
        self.psi_path = psi_path
        self.clock = clock
        self._free_bytes = free_bytes or (lambda: device_free_bytes(self.budget.device))
        self.members: dict[str, Member] = {}
        self.stats: dict[str, Stats] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, member: Member) -> None:
        self.members[member.name] = member
        self.stats[member.name] = Stats(last_used=self.clock(), activity=member.activity())

    # -- accounting ---------------------------------------------------------------------------
    def need(self, m: Member) -> int:
        """Bytes `m` is expected to take when loaded."""
        st = self.stats[m.name]
        return st.learned or m.estimate_bytes()

    def holding(self, m: Member) -> int:
        if not m.holds_memory():
            return 0
        st = self.stats[m.name]
        if m.asleep():  # what the engine kept after its release (measured), else a tenth
            return st.asleep if st.asleep is not None else self.need(m) // 10
        return st.measured or self.need(m)

    def used(self, exclude: str | None = None) -> int:
        return sum(self.holding(m) for m in self.members.values() if m.name != exclude)

    def pressure(self) -> Pressure:
        return read_psi(self.psi_path)

    def _pressure_hold(self) -> str | None:
        limit = self.cfg.psi_full_avg10_max
        p = self.pressure()
        if limit is None or not p.available or p.full_avg10 <= limit:
            return None
        return f"memory pressure: PSI full avg10 {p.full_avg10:.1f}% > {limit:g}%"

    # -- admission ----------------------------------------------------------------------------
    def plan(self, target: Member) -> tuple[list[Member], str | None]:
        """Models to evict so `target` fits, or a refusal reason naming what holds the memory."""
        need, used = self.need(target), self.used(exclude=target.name)
        soft, hard = self.budget.soft_bytes(self.cfg), self.budget.hard_bytes(self.cfg)
        victims: list[Member] = []
        blockers: list[str] = []
        holders = sorted((m for m in self.members.values() if m.name != target.name and m.holds_memory()),
                         key=lambda m: (RANK[m.priority], self.stats[m.name].last_used))
        for m in holders:
            why_not = self._not_evictable(m, target)
            if why_not:
                blockers.append(f"{m.name!r} ({m.priority}, {mb(self.holding(m))}, {why_not})")
            elif used + need > soft:
                victims.append(m)
                used -= self.holding(m)
            else:
                blockers.append(f"{m.name!r} ({m.priority}, {mb(self.holding(m))})")
        if used + need <= hard:
            return victims, None
        budget = (f"{target.name!r} needs {mb(need)}; budget {mb(self.budget.total_bytes)} "
                  f"({self.budget.device}), hard limit {mb(hard)}")
        held = "; ".join(blockers) or "nothing evictable"
        return [], f"cannot load {budget}, {mb(used)} held by: {held}"

    def _not_evictable(self, m: Member, target: Member) -> str:
        if m.priority == "critical":
            return "critical, never evicted"
        if RANK[m.priority] > RANK[target.priority]:
            return f"higher priority than {target.priority}"
        if not m.is_idle():
            return "busy"
        return ""

    def boot_check(self, m: Member) -> str | None:
        """At start-up (and breaker resets) no one is evicted: a model that does not fit
        stays stopped and loads on demand."""
        hold = self._pressure_hold()
        if hold:
            return hold
        if self.used(exclude=m.name) + self.need(m) > self.budget.hard_bytes(self.cfg):
            return (f"does not fit next to the loaded models ({mb(self.used(exclude=m.name))} of "
                    f"{mb(self.budget.hard_bytes(self.cfg))} used); loads on demand")
        return None

    async def load(self, m: Member, wait_s: float) -> None:
        """Make room for `m` and start it; raises MemoryPressure / MemoryRefused."""
        deadline = self.clock() + wait_s
        async with self._lock:
            if m.holds_memory() and not m.asleep():
                return
            while (hold := self._pressure_hold()) is not None:
                if self.clock() >= deadline:
                    raise MemoryPressure(f"model {m.name!r} not loaded: {hold}", retry_after_s=10)
                await asyncio.sleep(0.5)
            victims, refusal = self.plan(m)
            if refusal:
                self.stats[m.name].note = refusal
                log.warning("%s", refusal)
                raise MemoryRefused(refusal, retry_after_s=30)
            free = self._free_bytes()
            freed = sum(self.holding(v) for v in victims)
            if free is not None and self.need(m) > free + freed:
                msg = (f"cannot load {m.name!r}: needs {mb(self.need(m))}, the {self.budget.device} has "
                       f"{mb(free)} free (other processes hold the rest)")
                raise MemoryRefused(msg, retry_after_s=30)
            for v in victims:
                reason = f"evicted to make room for {m.name!r}"
                st = self.stats[v.name]
                st.evictions += 1
                if v.can_sleep() and await v.sleep(f"asleep: {reason}"):
                    st.note = f"asleep: {reason}"
                    st.measured = None
                    st.asleep = v.measure_bytes(self.budget.device)  # the accounting follows the release
                    log.info("%s: put to sleep to make room for %r (%s kept)", v.name, m.name, mb(st.asleep))
                    continue
                log.info("%s: %s", v.name, reason)
                st.note = reason
                await v.stop(reason)
            self.stats[m.name].note = ""
            self.stats[m.name].last_used = self.clock()
            m.start_now("on demand" + (f", evicted {', '.join(v.name for v in victims)}" if victims else ""))

    # -- housekeeping (called about once a second per model) ----------------------------------
    def tick(self, m: Member) -> None:
        st, now = self.stats[m.name], self.clock()
        act = m.activity()
        if act != st.activity:
            st.activity, st.last_used = act, now
        if not m.is_idle():
            st.last_used = now
        if m.asleep():
            pass  # measured right after its release
        elif m.holds_memory():
            st.asleep = None
            if now - st.measured_at >= MEASURE_EVERY_S:
                st.measured_at = now
                got = m.measure_bytes(self.budget.device)
                if got and m.is_ready():
                    st.measured = st.learned = got
        else:
            st.measured = None
        ka = m.keep_alive_s
        if (ka is not None and m.priority != "critical" and m.is_ready() and m.is_idle() and not m.asleep()
                and now - st.last_used >= ka and not self._lock.locked()):
            st.note = f"unloaded: idle for {now - st.last_used:.0f}s (keep_alive {ka:g}s)"
            self._spawn(m.stop(st.note))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reporting ----------------------------------------------------------------------------
    def model_snapshot(self, m: Member) -> dict[str, Any]:
        st = self.stats[m.name]
        return {"estimated_bytes": m.estimate_bytes(), "learned_bytes": st.learned,
                "measured_bytes": st.measured, "holding_bytes": self.holding(m),
                "idle_s": round(self.clock() - st.last_used, 1), "evictions": st.evictions,
                "note": st.note or None}

    def snapshot(self) -> dict[str, Any]:
        b = self.budget
        used = self.used()
        return {
            "device": b.device, "detail": b.detail, "budget_bytes": b.total_bytes,
            "detected_bytes": b.detected_bytes, "soft_limit_bytes": b.soft_bytes(self.cfg),
            "hard_limit_bytes": b.hard_bytes(self.cfg), "used_bytes": used,
            "free_bytes": self._free_bytes(), "psi": self.pressure().to_dict(),
            "psi_full_avg10_max": self.cfg.psi_full_avg10_max,
            "models": {name: {"priority": m.priority, "keep_alive_s": m.keep_alive_s,
                              "holds_memory": m.holds_memory(), **self.model_snapshot(m)}
                       for name, m in self.members.items()},
        }
