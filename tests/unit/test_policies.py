from __future__ import annotations

from collections import Counter

import pytest

from sglfleet.config import BreakerConfig, CacheAwareConfig
from sglfleet.core.worker import Worker
from sglfleet.routing.factory import make_policy
from sglfleet.routing.policies import (
    CacheAware,
    LeastLoad,
    PowerOfTwo,
    RoundRobin,
    RouteContext,
    Session,
)


def workers(n: int) -> list[Worker]:
    return [Worker.create("m", f"http://127.0.0.1:{9000 + i}", BreakerConfig()) for i in range(n)]


def test_round_robin_cycles_and_skips_ineligible() -> None:
    ws = workers(3)
    ws[1].healthy = False
    rr = RoundRobin()
    picks = [rr.select(ws, RouteContext()).worker for _ in range(4)]  # type: ignore[union-attr]
    assert picks == [ws[0], ws[2], ws[0], ws[2]]


def test_least_load_ties_broken_by_processed() -> None:
    ws = workers(3)
    ws[0].processed, ws[1].processed, ws[2].processed = 5, 1, 3
    assert LeastLoad().select(ws, RouteContext()).worker is ws[1]  # type: ignore[union-attr]
    ws[1].inflight = 2
    assert LeastLoad().select(ws, RouteContext()).worker is ws[2]  # type: ignore[union-attr]


def test_power_of_two_never_picks_the_most_loaded_of_three() -> None:
    ws = workers(3)
    ws[0].inflight, ws[1].inflight, ws[2].inflight = 10, 0, 5
    p = PowerOfTwo(seed=1)
    picks = Counter(p.select(ws, RouteContext()).worker.url for _ in range(300))  # type: ignore[union-attr]
    assert ws[0].url not in picks and picks[ws[1].url] > picks[ws[2].url]


def test_excluded_and_open_breaker_workers_are_not_picked() -> None:
    ws = workers(2)
    for _ in range(5):
        ws[0].breaker.record_failure()
    ctx = RouteContext(exclude={ws[1].id})
    assert make_policy("least_load").select(ws, ctx) is None


def test_cache_aware_routes_shared_prefix_to_same_worker_and_counts_hits() -> None:
    ws = workers(4)
    ca = CacheAware()
    prefix = "You are a helpful assistant for the ACME corporation. " * 4
    first = ca.select(ws, RouteContext(text=prefix + "question 1"))
    assert first is not None and first.cache_hit is False
    first.worker.inflight += 1
    for i in range(2, 6):
        d = ca.select(ws, RouteContext(text=prefix + f"question {i}"))
        assert d is not None and d.worker is first.worker and d.cache_hit is True
    assert ca.hits == 4 and ca.misses == 1


def test_cache_aware_miss_goes_to_least_loaded_not_smallest_tree() -> None:
    ws = workers(2)
    ws[0].inflight = 3
    d = CacheAware().select(ws, RouteContext(text="brand new text"))
    assert d is not None and d.worker is ws[1]


def test_cache_aware_ties_between_holders_broken_by_load() -> None:
    ws = workers(3)
    ca = CacheAware()
    text = "shared system prompt " * 10
    ca.tree.insert(text, ws[0].id)
    ca.tree.insert(text, ws[1].id)
    ws[0].inflight = 2
    d = ca.select(ws, RouteContext(text=text + "q"))
    assert d is not None and d.worker is ws[1] and d.cache_hit


def test_cache_aware_dead_holder_falls_back_to_a_live_holder_of_a_shorter_prefix() -> None:
    ws = workers(3)
    ca = CacheAware()
    base = "system " * 20
    ca.tree.insert(base + "long conversation turn " * 5, ws[0].id)
    ca.tree.insert(base, ws[1].id)
    ws[0].healthy = False
    d = ca.select(ws, RouteContext(text=base + "long conversation turn " * 5 + "next"))
    assert d is not None and d.worker is ws[1] and d.cache_hit


def test_cache_aware_imbalance_overrides_affinity() -> None:
    ws = workers(2)
    ca = CacheAware(CacheAwareConfig(balance_abs_threshold=4, balance_rel_threshold=1.5))
    text = "prefix " * 30
    ca.tree.insert(text, ws[0].id)
    ws[0].inflight = 10
    d = ca.select(ws, RouteContext(text=text))
    assert d is not None and d.worker is ws[1] and ca.balance_events == 1


def test_session_is_sticky_and_moves_only_keys_of_a_removed_worker() -> None:
    ws = workers(5)
    s = Session()
    keys = [f"user-{i}" for i in range(200)]
    before = {k: s.select(ws, RouteContext(routing_key=k)).worker for k in keys}  # type: ignore[union-attr]
    assert all(s.select(ws, RouteContext(routing_key=k)).worker is before[k] for k in keys)  # type: ignore[union-attr]
    gone = ws[2]
    gone.healthy = False
    after = {k: s.select(ws, RouteContext(routing_key=k)).worker for k in keys}  # type: ignore[union-attr]
    moved = [k for k in keys if after[k] is not before[k]]
    assert moved and all(before[k] is gone for k in moved)
    assert len(set(before.values())) == 5


def test_session_without_key_falls_back_to_cache_aware() -> None:
    ws = workers(2)
    d = Session().select(ws, RouteContext(text="hello"))
    assert d is not None and d.cache_hit is False


def test_unknown_policy() -> None:
    with pytest.raises(ValueError):
        make_policy("magic")


def test_affinity_slack_sends_a_hit_elsewhere_when_the_holder_is_busy() -> None:
    ws = workers(2)
    text = "shared system prompt " * 10
    strict = CacheAware()
    slack = CacheAware(CacheAwareConfig(affinity_slack=0))
    for ca in (strict, slack):
        ca.tree.insert(text, ws[0].id)
    ws[0].inflight = 1
    assert strict.select(ws, RouteContext(text=text + "q")).worker is ws[0]  # type: ignore[union-attr]
    d = slack.select(ws, RouteContext(text=text + "q"))
    assert d is not None and d.worker is ws[1] and d.cache_hit is None
    ws[0].inflight = 0
    assert slack.select(ws, RouteContext(text=text + "r")).worker is ws[0]  # type: ignore[union-attr]
