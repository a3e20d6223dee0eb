"""Rewriting what the gateway's relay sends, for APIs translated onto /v1 (Anthropic Messages,
OpenAI Responses, embeddings).

`openai.forward` returns an ASGI relay (dispatch, retries, limits, disconnects, metrics and the
access log all live there); `RelayAdapter` runs it with a `send` that rewrites the bytes:

- `stream`: an `SSEConverter` turns the relayed OpenAI SSE into the target API's SSE. Its
  `head()` is sent as soon as the response starts (Anthropic's `message_start`, Responses'
  `response.created`), `feed()` per piece, `close()` at the end;
- `whole`: one function turns a complete upstream body (status, bytes) into the response body.

The Ollama API uses it too (`ollama_stream.ollama_adapter`), with NDJSON as the stream type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, Protocol

import orjson

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
Whole = Callable[[int, bytes], tuple[int, bytes]]


class SSEConverter(Protocol):
    def head(self) -> bytes: ...
    def feed(self, piece: bytes) -> bytes: ...
    def close(self) -> bytes: ...


def sse_event(name: str, data: Any) -> bytes:
    """One named server-sent event (`event:` line + JSON `data:` line)."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class SSEChunks:
    """Splits relayed OpenAI SSE bytes into decoded JSON chunks; an event cut between two
    pieces is carried over. `[DONE]`, comments and undecodable payloads are skipped."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, piece: bytes) -> Iterator[dict[str, Any]]:
        buf = self._buf + piece
        *events, self._buf = buf.replace(b"\r\n", b"\n").split(b"\n\n")
        for event in events:
            yield from sse_objects(event)

    def rest(self) -> Iterator[dict[str, Any]]:
        buf, self._buf = self._buf, b""
        if buf.strip():
            yield from sse_objects(buf)


def sse_objects(event: bytes) -> Iterator[dict[str, Any]]:
    """The JSON objects of one SSE event's `data:` lines (comments, names, [DONE] skipped)."""
    for line in event.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict):
            yield data


def upstream_error_message(body: bytes, status: int) -> str:
    """The message of an engine's or the gateway's error body, whatever its shape."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace") or f"HTTP {status}"
    if not isinstance(data, dict):
        return f"HTTP {status}"
    err = data.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or f"HTTP {status}")
    if isinstance(err, str) and err:
        return err
    return str(data.get("message") or data.get("detail") or f"HTTP {status}")


def json_body(status: int, body: bytes) -> dict[str, Any] | None:
    """A successful upstream body as a JSON object, or None when it is not one."""
    if status >= 400:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


async def run_relay(relay: ASGIApp, scope: MutableMapping[str, Any], receive: Receive) -> tuple[int, bytes]:
    """Run a non-streamed relay to its end (metrics, access log and release included) and
    return its status and body, for callers that need the engine's answer itself."""
    sent: dict[str, Any] = {"status": 200, "body": b""}

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    await relay(scope, receive, capture)
    return sent["status"], sent["body"]


class StaticRelay:
    """A relay whose answer is already known (status, JSON body): what adapters wrap when the
    gateway assembled the answer from several engine requests."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(self.body)).encode())]})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class RelayAdapter:
    """Runs the gateway's relay with a `send` that rewrites SSE (`stream`) or one complete
    body (`whole`)."""

    def __init__(self, relay: ASGIApp, *, stream: SSEConverter | None = None, whole: Whole | None = None,
                 content_type: bytes = b"application/json", stream_type: bytes = b"text/event-stream") -> None:
        if (stream is None) == (whole is None):
            raise ValueError("either a stream converter or a body converter")
        self.relay = relay
        self.conv = stream
        self.convert = whole
        self.content_type = content_type
        self.stream_type = stream_type

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        started: Message | None = None
        chunks: list[bytes] = []
        conv = self.conv

        async def rewrite(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = message
                if conv is not None:
                    await send(response_start(message, self.stream_type, None))
                    head = conv.head()
                    if head:
                        await send({"type": "http.response.body", "body": head, "more_body": True})
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body, more = message.get("body", b""), message.get("more_body", False)
            if conv is not None:
                out = conv.feed(body) + (b"" if more else conv.close())
                if out or not more:
                    await send({"type": "http.response.body", "body": out, "more_body": more})
                return
            chunks.append(body)
            if more:
                return
            assert started is not None and self.convert is not None
            status, out = self.convert(started["status"], b"".join(chunks))
            await send(response_start({**started, "status": status}, self.content_type, len(out)))
            await send({"type": "http.response.body", "body": out, "more_body": False})

        await self.relay(scope, receive, rewrite)


def response_start(message: Message, content_type: bytes, length: int | None) -> Message:
    """The upstream's response start with our content type (and length, for a whole body)."""
    headers = [(k, v) for k, v in message.get("headers", ())
               if k.lower() not in (b"content-type", b"content-length")]
    headers.append((b"content-type", content_type))
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http.response.start", "status": message["status"], "headers": headers}
