"""In-process harness for the request path: the real gateway app (httpx's ASGI transport, no
server process) in front of fake engines on loopback (aiohttp servers in the same event loop).

Each FakeEngine speaks the OpenAI API the way SGLang does, and its behaviour is switched per
test: answer, fail with a status (for every request, for requests whose text contains a
marker, or at a rate), hang before the headers, stall after some chunks, or stop answering
everything like a SIGSTOPped process. A test runs in milliseconds to a few seconds.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiohttp import web

from sglfleet.api.app import create_app
from sglfleet.config import parse_config
from sglfleet.fleet import Fleet


@dataclass
class Behaviour:
    fail_status: int | None = None  # every generation answers this status (500 with fail_rate)
    fail_marker: str | None = None  # ...only requests whose body contains this text
    fail_rate: float = 0.0  # ...or this fraction of all requests (seeded)
    fail_body: bytes = b'{"error": {"message": "engine failure", "type": "server_error"}}'
    hang: bool = False  # generation never answers (headers included)
    stall_after: int | None = None  # a stream stops after this many chunks (socket kept open)
    frozen: bool = False  # nothing answers, heartbeat included (a SIGSTOPped engine)
    chunks: int = 4
    chunk_delay_s: float = 0.0


@dataclass
class FakeEngine:
    name: str
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    _runner: web.AppRunner | None = None
    _unfrozen: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def freeze(self) -> None:
        self.behaviour.frozen = True
        self._unfrozen.clear()

    def thaw(self) -> None:
        self.behaviour.frozen = False
        self._unfrozen.set()

    async def _wait_if_frozen(self) -> None:
        if self.behaviour.frozen:
            await self._unfrozen.wait()

    async def models(self, request: web.Request) -> web.Response:
        await self._wait_if_frozen()
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        data = orjson.loads(body)
        self.requests.append(data)
        self.headers.append(dict(request.headers))
        b = self.behaviour
        await self._wait_if_frozen()
        if b.hang:
            await asyncio.Event().wait()
        if b.fail_rate:
            failing = self.rng.random() < b.fail_rate
        else:
            failing = b.fail_status is not None and (b.fail_marker is None or b.fail_marker.encode() in body)
        if failing:
            return web.Response(status=b.fail_status or 500, body=b.fail_body, content_type="application/json")
        chat = request.path.endswith("/chat/completions")
        if not data.get("stream"):
            text = "".join(f"tok{i} " for i in range(b.chunks))
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                      if chat else {"index": 0, "text": text, "finish_reason": "stop"})
            return web.json_response({"id": "x", "object": "chat.completion", "model": "m", "choices": [choice],
                                      "usage": {"prompt_tokens": 3, "completion_tokens": b.chunks,
                                                "total_tokens": 3 + b.chunks}})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(b.chunks):
            if b.stall_after is not None and i >= b.stall_after:
                await asyncio.Event().wait()
            delta = {"content": f"tok{i} "}
            chunk = {"id": "x", "object": "chat.completion.chunk", "model": "m",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            if b.chunk_delay_s:
                await asyncio.sleep(b.chunk_delay_s)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def start(self) -> FakeEngine:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.models)
        app.router.add_post("/v1/chat/completions", self.generate)
        app.router.add_post("/v1/completions", self.generate)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self.thaw()
        if self._runner is not None:
            await self._runner.cleanup()


FAST_GATEWAY: dict[str, Any] = {
    "retry": {"max_attempts": 3, "initial_backoff_s": 0.0, "max_backoff_s": 0.0},
    "health": {"interval_s": 60},  # the deep probe is not under test here
    "heartbeat": {"interval_s": 0.1, "timeout_s": 0.3, "misses": 2},
    "breaker": {"failure_threshold": 3, "open_s": 60},
    "access_log": False,
}


@dataclass
class Gateway:
    fleet: Fleet
    client: httpx.AsyncClient
    engines: list[FakeEngine]

    async def chat(self, text: str = "hello", *, stream: bool = False, headers: dict[str, str] | None = None,
                   **extra: Any) -> httpx.Response:
        body = {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 8,
                "stream": stream, **extra}
        return await self.client.post("/v1/chat/completions", json=body, headers=headers)

    def workers(self) -> list[Any]:
        return self.fleet.registry.resolve("m").workers

    def worker_of(self, engine: FakeEngine) -> Any:
        return next(w for w in self.workers() if w.url == engine.url)


@asynccontextmanager
async def gateway(n: int = 2, *, model: dict[str, Any] | None = None, urls: list[str] | None = None,
                  **gw: Any) -> AsyncIterator[Gateway]:
    """A gateway in front of `n` fake engines (policy round_robin unless `model` says else)."""
    engines = [await FakeEngine(f"e{i}").start() for i in range(n)]
    cfg = parse_config({
        "gateway": {**FAST_GATEWAY, **gw},
        "models": [{"name": "m", "engine": "external", "policy": "round_robin",
                    "urls": urls or [e.url for e in engines], **(model or {})}],
    }, env={})
    fleet = Fleet(cfg)
    await fleet.start(wait=False)
    app = create_app(cfg, fleet=fleet, wait_ready=False)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    client = httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30)
    try:
        yield Gateway(fleet, client, engines)
    finally:
        await client.aclose()
        await fleet.stop()
        for e in engines:
            await e.stop()


def sse_events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]
