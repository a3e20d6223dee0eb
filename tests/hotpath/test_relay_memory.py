"""A stream abandoned by its client must leave nothing behind in the gateway (the soak once
found ~10 KB kept per abandoned stream through an exception's traceback)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import orjson

from sglfleet.api.link import ClientLink
from sglfleet.api.relay import Outcome, StreamRelay
from sglfleet.config import BreakerConfig
from sglfleet.core.exchange import Exchange
from sglfleet.core.route import Decision
from sglfleet.core.worker import Worker
from sglfleet.sim.process import SimProcess
from sglfleet.upstream import http1
from sglfleet.upstream.dispatch import Opened


async def abandon_one(client: http1.Client, url: str) -> tuple[weakref.ref[StreamRelay], Outcome]:
    worker = Worker.create("bench", url, BreakerConfig())
    body = {"model": "sim", "max_tokens": 200, "ignore_eos": True, "stream": True,
            "messages": [{"role": "user", "content": "abandon me"}]}
    exchange = Exchange("rid-1", "bench")
    attempt = exchange.attempt(Decision(worker))
    resp = attempt.response = await client.post(url, "/v1/chat/completions", orjson.dumps(body),
                                                {"content-type": "application/json"})
    outcomes: list[Outcome] = []
    first_body = asyncio.Event()

    async def receive() -> dict:
        await first_body.wait()
        return {"type": "http.disconnect"}

    relay = StreamRelay(Opened(attempt, resp, b"", 1), exchange, include_usage=False, model="bench",
                        finish=outcomes.append, headers={}, link=ClientLink(receive))

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body":
            first_body.set()
            await asyncio.sleep(0.05)  # the client is gone before the next chunk is read

    await relay({"type": "http"}, receive, send)
    assert worker.inflight == 0 and not worker.attempts and exchange.closed
    ref = weakref.ref(relay)
    del relay
    return ref, outcomes[0]


async def test_abandoned_streams_are_freed(sim: SimProcess) -> None:
    client = http1.Client()
    refs = []
    for _ in range(3):
        ref, out = await abandon_one(client, sim.urls[0])
        assert out.disconnected and out.status == 499
        refs.append(ref)
    await client.close()
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
