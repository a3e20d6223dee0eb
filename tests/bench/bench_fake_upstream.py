"""A deterministic OpenAI-compatible streaming server for bench tests (real HTTP, loopback).

Timing per request (defaults): first output token 100 ms after the request arrives, then
one token every 20 ms, scheduled against absolute deadlines so sleep overshoot does not
accumulate. Headers change the behaviour per request:

- `x-fake-ttft-ms`, `x-fake-itl-ms`: first-token delay and per-token interval.
- `x-fake-tokens-per-chunk`: tokens sent together in one SSE event (interval scales).
- `x-fake-status`: answer with this HTTP status and an OpenAI error body.
- `x-fake-error-after`: send an error event after this many tokens (HTTP status stays 200).
- `x-fake-no-usage`: omit the usage chunk.
- `x-fake-slots`: a server of known capacity: at most this many requests are served at once
  (one semaphore per value); the rest wait, and their TTFT includes the wait.

`GET /_fake/log` lists every generation request received (perf_counter at arrival, the first
characters of the prompt); `?clear=1` empties it. `GET /metrics` serves SGLang-named gauges
and counters (running and queued requests, prompt and cached tokens). Run the module as a
script (`python bench_fake_upstream.py PORT`) to serve from its own process, away from the
client's event loop and GIL.

Like real servers it sends a role-only first chunk (empty content) immediately, which
must not count as the first token.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sse(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _prompt_tokens(body: dict) -> int:
    if "messages" in body:
        text = " ".join(str(m.get("content", "")) for m in body["messages"])
    else:
        text = str(body.get("prompt", ""))
    return len(text.split())


_LOG: list[dict[str, object]] = []
_SLOTS: dict[int, asyncio.Semaphore] = {}
_STATE = {"running": 0, "queued": 0, "prompt_tokens": 0}


def _first_text(body: dict) -> str:
    if "messages" in body and body["messages"]:
        return str(body["messages"][0].get("content", ""))
    return str(body.get("prompt", ""))


async def _completions(request: web.Request) -> web.StreamResponse:
    received = time.perf_counter()
    body = orjson.loads(await request.read())
    h = request.headers
    _LOG.append({"t": received, "prompt": _first_text(body)[:80]})
    _STATE["prompt_tokens"] += _prompt_tokens(body)
    slots = int(h.get("x-fake-slots", 0))
    if not slots:
        return await _serve(request, body, received)
    sem = _SLOTS.setdefault(slots, asyncio.Semaphore(slots))
    _STATE["queued"] += 1
    try:
        await sem.acquire()
    finally:
        _STATE["queued"] -= 1
    try:
        return await _serve(request, body, time.perf_counter())
    finally:
        sem.release()


async def _serve(request: web.Request, body: dict, arrived: float) -> web.StreamResponse:
    _STATE["running"] += 1
    try:
        return await _respond(request, body, arrived)
    finally:
        _STATE["running"] -= 1


async def _respond(request: web.Request, body: dict, arrived: float) -> web.StreamResponse:
    h = request.headers
    if "x-fake-status" in h:
        status = int(h["x-fake-status"])
        return web.json_response({"error": {"message": f"fake failure {status}",
                                            "type": "server_error", "param": None,
                                            "code": None}}, status=status)
    chat = request.path.endswith("/chat/completions")
    ttft = float(h.get("x-fake-ttft-ms", 100)) / 1000
    itl = float(h.get("x-fake-itl-ms", 20)) / 1000
    per_chunk = int(h.get("x-fake-tokens-per-chunk", 1))
    error_after = int(h["x-fake-error-after"]) if "x-fake-error-after" in h else None
    n_out = int(body.get("max_tokens") or 16)
    n_in = _prompt_tokens(body)
    base = {"id": "cmpl-fake", "created": int(time.time()), "model": body.get("model", "fake"),
            "object": "chat.completion.chunk" if chat else "text_completion"}

    def choice(text: str, finish: str | None = None) -> dict:
        if chat:
            return {"index": 0, "delta": {"content": text} if text else {},
                    "finish_reason": finish}
        return {"index": 0, "text": text, "finish_reason": finish}

    if not body.get("stream"):
        await asyncio.sleep(ttft + itl * (n_out - 1))
        text = "tok " * n_out
        msg = ({"index": 0, "message": {"role": "assistant", "content": text},
                "finish_reason": "length"} if chat else choice(text, "length"))
        return web.json_response({**base, "choices": [msg], "usage": {
            "prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}})

    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    if chat:
        await resp.write(_sse({**base, "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}))
    sent = 0
    while sent < n_out:
        k = min(per_chunk, n_out - sent)
        # the chunk carrying token j (0-based) is due at ttft + j*itl
        due = arrived + ttft + (sent + k - 1) * itl
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if error_after is not None and sent >= error_after:
            await resp.write(_sse({"error": {"message": "fake mid-stream failure",
                                             "type": "server_error"}}))
            await resp.write(b"data: [DONE]\n\n")
            return resp
        await resp.write(_sse({**base, "choices": [choice("tok " * k)]}))
        sent += k
    await resp.write(_sse({**base, "choices": [choice("", "length")]}))
    if "x-fake-no-usage" not in h:
        await resp.write(_sse({**base, "choices": [], "usage": {
            "prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}}))
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [
        {"id": "fake-model", "object": "model", "owned_by": "test", "root": "fake-model"}]})


async def _log(request: web.Request) -> web.Response:
    entries = list(_LOG)
    if request.query.get("clear"):
        _LOG.clear()
    return web.json_response(entries)


async def _metrics(request: web.Request) -> web.Response:
    text = (
        "# TYPE sglang:num_running_reqs gauge\n"
        f'sglang:num_running_reqs{{model_name="fake"}} {_STATE["running"]}\n'
        "# TYPE sglang:num_queue_reqs gauge\n"
        f'sglang:num_queue_reqs{{model_name="fake"}} {_STATE["queued"]}\n'
        "# TYPE sglang:prompt_tokens counter\n"
        f'sglang:prompt_tokens_total{{model_name="fake"}} {_STATE["prompt_tokens"]}\n'
    )
    return web.Response(text=text, content_type="text/plain")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/_fake/log", _log)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/v1/chat/completions", _completions)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_get("/v1/models", _models)
    return app


@contextmanager
def serve_in_subprocess() -> Iterator[str]:
    """Run the fake server in its own Python process; yields its base URL."""
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("fake upstream process did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    import sys

    web.run_app(make_app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None,
                print=None)
