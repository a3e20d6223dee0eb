"""Every wait is bounded: the first byte, the gap between chunks, and an engine that stops
answering altogether (the heartbeat). Timings here are generous upper bounds, never targets."""

from __future__ import annotations

import asyncio
import time

import orjson

from sglfleet.api.shutdown import drain
from sglfleet.core.breaker import BreakerState
from tests.core.harness import gateway, sse_events

FAST = {"first_byte_s": 0.5, "stall_s": 0.5, "total_s": 2.0}


async def test_a_stream_with_no_first_byte_is_retried_elsewhere() -> None:
    async with gateway(2, timeouts=FAST) as gw:
        stuck = gw.engines[0]
        stuck.behaviour.stall_after = 0  # headers, then nothing
        for _ in range(2):
            r = await gw.chat("hi", stream=True)
            events = sse_events(r.text)
            assert r.status_code == 200 and events[-1] == "[DONE]"
            assert not any('"error"' in e for e in events)
        assert "no first byte" in gw.worker_of(stuck).last_error


async def test_a_stall_mid_stream_ends_with_an_error_event_and_done() -> None:
    async with gateway(1, timeouts=FAST) as gw:
        gw.engines[0].behaviour.stall_after = 2
        t0 = time.monotonic()
        r = await gw.chat("hi", stream=True)
        events = sse_events(r.text)
        assert events[-1] == "[DONE]"
        err = orjson.loads(events[-2])["error"]
        assert err["code"] == "upstream_timeout" and "stalled" in err["message"]
        assert time.monotonic() - t0 < 10
        assert gw.workers()[0].inflight == 0 and not gw.workers()[0].attempts


async def test_a_frozen_engine_is_stalled_within_seconds_and_its_waiting_requests_move() -> None:
    # non-streamed requests: no early byte, so only the heartbeat can tell a hung engine
    async with gateway(2, timeouts={"total_s": 60}, model={"policy": "least_load"}) as gw:
        frozen = gw.engines[0]
        frozen.freeze()
        t0 = time.monotonic()
        results = await asyncio.gather(*(gw.chat(f"r{i}") for i in range(4)))
        assert [r.status_code for r in results] == [200] * 4
        assert time.monotonic() - t0 < 10  # heartbeat: 2 misses of 0.3 s, not total_s
        w = gw.worker_of(frozen)
        assert w.stalled and not w.eligible
        for _ in range(3):  # nothing new goes to it, even with the other one busy
            assert (await gw.chat("more")).status_code == 200
        assert w.inflight == 0
        frozen.thaw()
        deadline = time.monotonic() + 5
        while w.stalled and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not w.stalled and w.eligible  # re-admitted after SIGCONT


async def test_the_only_worker_hanging_gives_504_within_its_deadline() -> None:
    async with gateway(1, timeouts=FAST) as gw:
        gw.engines[0].behaviour.hang = True
        t0 = time.monotonic()
        r = await gw.chat("hi", stream=True)
        assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
        assert time.monotonic() - t0 < 10
        assert gw.workers()[0].breaker.failures >= 1


async def test_shutdown_lets_short_requests_finish_and_cuts_the_rest_cleanly() -> None:
    async with gateway(1, timeouts={"stall_s": 30}) as gw:
        b = gw.engines[0].behaviour
        b.chunks, b.chunk_delay_s = 400, 0.05  # a 20 s stream
        stream = asyncio.ensure_future(gw.chat("long", stream=True))
        while not gw.fleet.exchanges:
            await asyncio.sleep(0.01)
        aborted = await drain(gw.fleet, grace_s=0.3)
        assert aborted == 1
        r = await stream
        events = sse_events(r.text)
        assert events[-1] == "[DONE]" and "shutting down" in orjson.loads(events[-2])["error"]["message"]
        refused = await gw.chat("after")
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert (await gw.client.get("/ready")).status_code == 503
        w = gw.workers()[0]
        assert w.breaker.state is BreakerState.CLOSED and w.breaker.failures == 0 and w.inflight == 0
