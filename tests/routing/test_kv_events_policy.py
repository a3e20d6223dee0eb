"""kv_events end to end in one process: simulated workers publish, the policy subscribes
(endpoints found through /get_server_info), routes, and predicts the engine's cached tokens."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from sglfleet.config import BreakerConfig, KvEventsConfig
from sglfleet.core.worker import Worker
from sglfleet.routing.kv_policy import KvEventsPolicy
from sglfleet.routing.kv_subscriber import Endpoints, Subscriber, cancel
from sglfleet.routing.policies import RouteContext
from sglfleet.sim import SimConfig, find_free_ports, run_sim_workers
from sglfleet.sim.kv_events import KvEventPublisher
from sglfleet.sim.kv_events import KvEventsConfig as SimKvConfig
from sglfleet.sim.radix_cache import Cleared, Stored

PAGE = 4
SHARED = " ".join(f"shared{i}" for i in range(40))


def kv_config(n: int) -> str:
    base = find_free_ports(2 * n)
    return json.dumps({"publisher": "zmq", "endpoint": f"tcp://*:{base}", "replay_endpoint": f"tcp://*:{base + n}"})


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def fleet_and_policy(n: int, events: bool = True) -> AsyncIterator[tuple[Any, KvEventsPolicy, list[Worker]]]:
    cfg = SimConfig(page_size=PAGE, time_scale=0.0, kv_events_config=kv_config(n) if events else None)
    async with run_sim_workers(cfg, n=n) as fleet:
        policy = KvEventsPolicy(KvEventsConfig(tokenizer="sim", stale_after_s=5.0), urls=fleet.urls)
        workers = [Worker.create("sim", u, BreakerConfig()) for u in fleet.urls]
        try:
            yield fleet, policy, workers
        finally:
            await policy.aclose()


async def send(http: aiohttp.ClientSession, policy: KvEventsPolicy, workers: list[Worker],
               content: str) -> tuple[Worker, int | None, int]:
    body = {"model": "sim", "messages": [{"role": "user", "content": content}], "max_tokens": 2}
    d = policy.select(workers, RouteContext(text=content, body=body))
    assert d is not None
    w = d.worker
    w.inflight += 1
    w.processed += 1
    try:
        async with http.post(w.url + "/v1/chat/completions", json=body) as r:
            usage = (await r.json())["usage"]
    finally:
        w.inflight -= 1
    return w, d.predicted_cached_tokens, usage["prompt_tokens_details"]["cached_tokens"]


async def test_routes_to_the_holder_and_predicts_the_engines_cached_tokens() -> None:
    async with fleet_and_policy(3) as (fleet, policy, workers), aiohttp.ClientSession() as http:
        policy.select(workers, RouteContext(text="warm-up"))  # subscribes to every worker
        await until(lambda: all(not policy.is_stale(w) for w in workers), "subscriptions")
        first, predicted, cached = await send(http, policy, workers, SHARED + " question one")
        assert (predicted, cached) == (0, 0)
        await until(lambda: policy.index.blocks(first.id) > 0, "the first request's events")
        for q in ("two", "three", "four"):
            w, predicted, cached = await send(http, policy, workers, SHARED + " question " + q)
            assert w is first
            assert cached >= 40 and predicted == cached  # the prediction is the engine's own count
            await until(lambda: policy.index.blocks(first.id) > 0, "events")
        # the engine drops its cache (a restart does the same): AllBlocksCleared empties the index
        async with http.post(first.url + "/flush_cache") as r:
            assert r.status == 200
        await until(lambda: policy.index.blocks(first.id) == 0, "AllBlocksCleared")
        w, predicted, cached = await send(http, policy, workers, SHARED + " question five")
        assert (predicted, cached) == (0, 0)


async def test_worker_without_events_falls_back_to_cache_aware() -> None:
    async with fleet_and_policy(2, events=False) as (fleet, policy, workers), aiohttp.ClientSession() as http:
        w1, _, _ = await send(http, policy, workers, SHARED + " a")
        w2, _, cached = await send(http, policy, workers, SHARED + " b")
        assert w2 is w1 and cached > 0  # cache_aware's tree kept the prefix on one worker
        assert policy.fallback_decisions == 2
        assert [usable for _, usable, _ in policy.status()] == [False, False]


async def test_gap_is_filled_from_replay_and_a_restart_clears_the_worker() -> None:
    base = find_free_ports(2)
    pub = KvEventPublisher(SimKvConfig(endpoint=f"tcp://127.0.0.1:{base}",
                                       replay_endpoint=f"tcp://127.0.0.1:{base + 1}"))
    pub.start()
    policy = KvEventsPolicy(KvEventsConfig(tokenizer="sim"))
    idx = policy.index
    eps = Endpoints(f"tcp://127.0.0.1:{base}", f"tcp://127.0.0.1:{base + 1}")

    async def resolve() -> Endpoints:
        return eps

    sub = Subscriber("w", idx, resolve)
    try:
        pub.publish([Stored([1], None, [10, 11], 2)])  # before the subscriber exists: learnt by replay
        task = asyncio.get_running_loop().create_task(sub.run())
        await until(lambda: sub.synced and idx.blocks("w") == 1, "the join replay")
        await cancel(task)
        pub.publish([Stored([2], 1, [12, 13], 2)])  # seq 1: missed (no subscriber)
        pub.publish([Stored([3], 2, [14, 15], 2)])  # seq 2
        await sub.receive(2, pub._buffer[-1][1])  # arrives after a gap: 1 comes from replay first
        assert (sub.gaps, sub.replays, sub.orphans) == (1, 2, 0)
        assert idx.blocks("w") == 3
        await sub.receive(0, pub._buffer[0][1])  # sequence restarted: the engine restarted
        assert sub.restarts == 1 and idx.blocks("w") == 1
        pub.publish([Cleared()])
        await sub.receive(3, pub._buffer[-1][1])
        assert idx.blocks("w") == 0
    finally:
        await pub.close()


def test_kv_events_needs_a_tokenizer() -> None:
    with pytest.raises(ValueError, match="tokenizer"):
        KvEventsPolicy(KvEventsConfig())
