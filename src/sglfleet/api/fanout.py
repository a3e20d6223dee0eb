"""One client request served as several engine requests, for engines without `n` or lists of
prompts (engines/contract.py): each body goes through `openai.forward` on its own (limits,
retries, metrics and the access log as for any request), and the answers are merged into one,
choice `index` = the body's position, usage summed.

Non-streamed: every request runs to its end; the first error answers for all. Streamed: the
response starts once the first request has opened (an error before that is the client's
normal 4xx/5xx); events are relayed as they arrive with their `index` rewritten, each
request's `[DONE]` dropped and one usage chunk (when asked for) plus one `[DONE]` sent at the
end. A request failing after the stream started ends it with an error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from sglfleet.api.adapter import Receive, Send, SSEChunks, StaticRelay, run_relay
from sglfleet.api.relay import DONE, sse_error_event

Forward = Callable[[dict[str, Any]], Awaitable[Any]]
_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


def _sum_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: sum(int(u.get(k) or 0) for u in usages) for k in _USAGE}


async def forward_all(bodies: list[dict[str, Any]], one: Forward, *, stream: bool) -> Any:
    if not stream:
        return await _whole(bodies, one)
    merged = _Merged(bodies, one, include_usage=bool((bodies[0].get("stream_options") or {}).get("include_usage")))
    await merged.open()
    return merged


async def _whole(bodies: list[dict[str, Any]], one: Forward) -> StaticRelay:
    async def run(body: dict[str, Any]) -> tuple[int, bytes]:
        relay = await one(body)
        return await run_relay(relay, {"type": "http"}, _never)

    tasks = [asyncio.ensure_future(run(b)) for b in bodies]
    try:
        results = await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    first: dict[str, Any] | None = None
    choices: list[dict[str, Any]] = []
    usages = []
    for status, raw in results:
        if status != 200:
            return StaticRelay(status, raw)
        data = orjson.loads(raw)
        first = first or data
        for choice in data.get("choices") or ():
            choices.append({**choice, "index": len(choices)})
        if isinstance(data.get("usage"), dict):
            usages.append(data["usage"])
    assert first is not None
    out = {**first, "choices": choices}
    if usages:
        out["usage"] = _sum_usage(usages)
    return StaticRelay(200, orjson.dumps(out))


async def _never() -> MutableMapping[str, Any]:
    """The sub-requests' `receive`: the client's disconnect is watched by each forward's link."""
    await asyncio.Event().wait()
    raise AssertionError


class _Merged:
    def __init__(self, bodies: list[dict[str, Any]], one: Forward, *, include_usage: bool) -> None:
        self.bodies = bodies
        self.one = one
        self.include_usage = include_usage
        self.queue: asyncio.Queue[tuple[int, bytes | BaseException | None]] = asyncio.Queue()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        self.tasks = [asyncio.ensure_future(self._run(i, b)) for i, b in enumerate(self.bodies)]
        try:
            await self.opened
        except BaseException:
            for t in self.tasks:
                t.cancel()
            raise

    async def _run(self, index: int, body: dict[str, Any]) -> None:
        try:
            relay = await self.one(body)
        except BaseException as exc:
            if not self.opened.done():
                self.opened.set_exception(exc)
            self.queue.put_nowait((index, exc))
            return
        if not self.opened.done():
            self.opened.set_result(None)

        async def capture(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                self.queue.put_nowait((index, message["body"]))

        try:
            await relay({"type": "http"}, _never, capture)
        finally:
            self.queue.put_nowait((index, None))

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        parsers = [SSEChunks() for _ in self.bodies]
        left = len(self.bodies)
        usages: list[dict[str, Any]] = []
        head: dict[str, Any] | None = None
        try:
            while left:
                index, item = await self.queue.get()
                if item is None:
                    left -= 1
                    continue
                if isinstance(item, BaseException):
                    left -= 1
                    message = getattr(item, "message", None) or type(item).__name__
                    await send({"type": "http.response.body", "more_body": True,
                                "body": sse_error_event(502, str(message), "upstream_error")})
                    continue
                out = []
                for chunk in parsers[index].feed(item):
                    if "error" in chunk and not chunk.get("choices"):
                        out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
                        continue
                    head = head or chunk
                    if isinstance(chunk.get("usage"), dict):
                        usages.append(chunk["usage"])
                        if not chunk.get("choices"):
                            continue
                        chunk.pop("usage")
                    for choice in chunk.get("choices") or ():
                        choice["index"] = index
                    out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
                if out:
                    await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
            tail = b""
            if self.include_usage and usages and head is not None:
                usage = {"id": head.get("id"), "object": head.get("object"), "created": int(time.time()),
                         "model": head.get("model"), "choices": [], "usage": _sum_usage(usages)}
                tail = b"data: " + orjson.dumps(usage) + b"\n\n"
            await send({"type": "http.response.body", "body": tail + DONE, "more_body": False})
        finally:
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
