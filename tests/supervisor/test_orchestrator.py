"""The memory orchestrator against fake models (no processes): eviction order, priorities,
refusal reasons, PSI hold, keep_alive, measured footprint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sglfleet.config import MemoryConfig
from sglfleet.supervisor.memory import Budget, parse_psi, read_psi
from sglfleet.supervisor.orchestrator import MemoryOrchestrator, MemoryPressure, MemoryRefused

MB = 1_000_000


class Fake:
    def __init__(self, name: str, size: int, priority: str = "normal", keep_alive_s: float | None = None,
                 loaded: bool = False) -> None:
        self.name, self.size, self.priority, self.keep_alive_s = name, size * MB, priority, keep_alive_s
        self.loaded, self.busy, self.requests, self.rss = loaded, False, 0, None
        self.stops: list[str] = []
        self.sleepy = False  # evict: sleep on an engine with a memory saver
        self.sleeping = False

    def holds_memory(self) -> bool:
        return self.loaded

    def is_ready(self) -> bool:
        return self.loaded

    def is_idle(self) -> bool:
        return not self.busy

    def activity(self) -> int:
        return self.requests

    def estimate_bytes(self) -> int:
        return self.size

    def measure_bytes(self, device: str) -> int | None:
        return self.rss

    def start_now(self, reason: str) -> None:
        self.loaded, self.sleeping = True, False

    def can_sleep(self) -> bool:
        return self.sleepy

    def asleep(self) -> bool:
        return self.sleeping

    async def sleep(self, reason: str = "") -> bool:
        self.sleeping = True
        self.rss = 20 * MB  # what a released engine keeps
        return True

    async def stop(self, reason: str = "") -> None:
        self.loaded = False
        self.stops.append(reason)


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def orch(*members: Fake, budget: int = 1000, psi: Path | None = None, **cfg: object) -> tuple[MemoryOrchestrator, Clock]:
    clock = Clock()
    o = MemoryOrchestrator(MemoryConfig(soft_limit=0.8, hard_limit=1.0, **cfg),  # type: ignore[arg-type]
                           budget=Budget("ram", budget * MB, None, "test"), psi_path=psi or Path("/nonexistent"),
                           clock=clock, free_bytes=lambda: None)
    for m in members:
        o.attach(m)  # type: ignore[arg-type]
    return o, clock


def test_load_fits_without_eviction() -> None:
    a, b = Fake("a", 300, loaded=True), Fake("b", 300)
    o, _ = orch(a, b)
    asyncio.run(o.load(b, 1))  # type: ignore[arg-type]
    assert b.loaded and a.loaded and o.used() == 600 * MB


def test_evicts_idle_lowest_priority_then_least_recently_used() -> None:
    low = Fake("low", 300, "low", loaded=True)
    old, new = Fake("old", 300, loaded=True), Fake("new", 300, loaded=True)
    target = Fake("t", 500, "high")
    o, clock = orch(low, old, new, target)
    clock.t = 10
    new.requests = 1
    o.tick(new)  # type: ignore[arg-type]  # new was used at t=10, old at t=0
    asyncio.run(o.load(target, 1))  # type: ignore[arg-type]
    # 900 used + 500 > soft 800: evict low, then old (LRU); new stays (300 + 500 = 800 <= soft)
    assert not low.loaded and not old.loaded and new.loaded and target.loaded
    assert low.stops == ["evicted to make room for 't'"]
    assert o.stats["old"].evictions == 1


def test_critical_higher_priority_and_busy_models_are_never_evicted() -> None:
    crit = Fake("crit", 400, "critical", loaded=True)
    high = Fake("high", 300, "high", loaded=True)
    busy = Fake("busy", 200, "low", loaded=True)
    busy.busy = True
    target = Fake("t", 300, "normal")
    o, _ = orch(crit, high, busy, target)
    with pytest.raises(MemoryRefused) as exc:
        asyncio.run(o.load(target, 1))  # type: ignore[arg-type]
    msg = exc.value.message
    assert "'t' needs 300 MB" in msg
    assert "'crit' (critical, 400 MB, critical, never evicted)" in msg
    assert "'high' (high, 300 MB, higher priority than normal)" in msg
    assert "'busy' (low, 200 MB, busy)" in msg
    assert crit.loaded and high.loaded and busy.loaded and not target.loaded
    assert exc.value.headers["retry-after"]


def test_refusal_evicts_nothing_when_even_eviction_cannot_make_room() -> None:
    small, big = Fake("small", 100, "low", loaded=True), Fake("big", 2000)
    o, _ = orch(small, big)
    with pytest.raises(MemoryRefused):
        asyncio.run(o.load(big, 1))  # type: ignore[arg-type]
    assert small.loaded and not small.stops


def test_measured_footprint_replaces_the_estimate_and_is_learned() -> None:
    a = Fake("a", 300, loaded=True)
    o, clock = orch(a)
    a.rss = 120 * MB
    clock.t = 5
    o.tick(a)  # type: ignore[arg-type]
    assert o.holding(a) == 120 * MB  # type: ignore[arg-type]
    asyncio.run(a.stop())
    clock.t = 10
    o.tick(a)  # type: ignore[arg-type]
    assert o.holding(a) == 0 and o.need(a) == 120 * MB  # type: ignore[arg-type]


def test_keep_alive_unloads_idle_models_but_not_critical_ones() -> None:
    async def run() -> None:
        a = Fake("a", 100, keep_alive_s=30, loaded=True)
        c = Fake("c", 100, "critical", keep_alive_s=30, loaded=True)
        o, clock = orch(a, c)
        clock.t = 20
        o.tick(a)  # type: ignore[arg-type]
        assert a.loaded
        clock.t = 31
        for m in (a, c):
            o.tick(m)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert not a.loaded and "keep_alive 30s" in a.stops[0] and c.loaded
    asyncio.run(run())


def test_boot_check_defers_what_does_not_fit() -> None:
    a, b = Fake("a", 600, loaded=True), Fake("b", 600)
    o, _ = orch(a, b)
    assert "loads on demand" in (o.boot_check(b) or "")  # type: ignore[arg-type]
    assert o.boot_check(a) is None  # type: ignore[arg-type]


def test_psi_parse_and_absence(tmp_path: Path) -> None:
    p = parse_psi("some avg10=1.50 avg60=0.20 avg300=0.00 total=9\nfull avg10=12.00 avg60=3.00 avg300=0 total=1\n")
    assert (p.available, p.some_avg10, p.full_avg10, p.full_avg60) == (True, 1.5, 12.0, 3.0)
    assert not read_psi(tmp_path / "missing").available
    assert read_psi(tmp_path / "missing").to_dict() == {"available": False}


def test_psi_above_threshold_holds_loads_then_503(tmp_path: Path) -> None:
    psi = tmp_path / "memory"
    psi.write_text("some avg10=40.00 avg60=0 avg300=0 total=0\nfull avg10=25.00 avg60=0 avg300=0 total=0\n")
    b = Fake("b", 100)
    o, _ = orch(b, psi=psi, psi_full_avg10_max=10.0)
    o.clock = __import__("time").monotonic
    with pytest.raises(MemoryPressure, match="PSI full avg10 25.0% > 10%"):
        asyncio.run(o.load(b, 0.6))  # type: ignore[arg-type]
    assert not b.loaded
    assert o.boot_check(b) is not None  # type: ignore[arg-type]
    psi.write_text("some avg10=0 avg60=0 avg300=0 total=0\nfull avg10=0.00 avg60=0 avg300=0 total=0\n")
    asyncio.run(o.load(b, 0.6))  # type: ignore[arg-type]
    assert b.loaded
    snap = o.snapshot()
    assert snap["psi"]["available"] and snap["models"]["b"]["holds_memory"]


async def test_eviction_puts_a_sleepy_model_to_sleep_and_accounts_for_the_release() -> None:
    a, b = Fake("a", 600, loaded=True), Fake("b", 600)
    a.sleepy = True
    o, _ = orch(a, b)
    await o.load(b, 1.0)
    assert a.sleeping and a.holds_memory() and not a.stops  # asleep, not stopped
    assert o.holding(a) == 20 * MB  # measured after the release, not its loaded size
    assert b.loaded and o.used() == 620 * MB
    await o.load(a, 1.0)  # the next request wakes it: b (idle, same priority) makes room
    assert not a.sleeping and b.stops and o.holding(a) == 600 * MB
