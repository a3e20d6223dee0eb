"""Relay an opened upstream response to the client: bytes as they arrive, inspected only
where needed (first content for TTFT, the usage chunk, the final [DONE]).

Written as raw ASGI callables rather than Starlette's StreamingResponse: the exchange's
ClientLink (one watcher task from admission on) notices the client leaving and closes the
upstream connection, which makes the engine abort the generation; nothing runs per chunk
besides a few byte searches done in C. Every path ends in one `exchange.close(verdict)`,
which releases the worker slot, the breaker permit, the connection and the limiter slot.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from sglfleet.api.link import ClientLink
from sglfleet.api.migration import ErrorEvent, Migration
from sglfleet.core.errors import UpstreamError, UpstreamProtocolError
from sglfleet.core.exchange import Exchange, Verdict
from sglfleet.upstream.dispatch import UPSTREAM_ERRORS, Opened, deadline_error, map_client_error

log = logging.getLogger("sglfleet.relay")

DONE = b"data: [DONE]\n\n"
# The first output: non-empty text (a role-only first chunk with "content":"" is not a
# token, as in SGLang's bench_serving) or a tool call. One C-level search per piece.
_FIRST_OUTPUT = re.compile(rb'"(?:content|text|reasoning_content)": ?"[^"]|"tool_calls": ?\[')
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')


@dataclass(slots=True)
class Outcome:
    """What the access log and metrics record when a response ends."""

    status: int = 200
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens, when the engine says
    disconnected: bool = False
    error: str = ""
    extra: dict[str, object] = field(default_factory=dict)


Finish = Callable[[Outcome], None]


def cached_tokens_of(usage: dict[str, object]) -> int | None:
    details = usage.get("prompt_tokens_details")
    value = details.get("cached_tokens") if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_USAGE_OBJECT = re.compile(rb'"usage": ?(\{(?:[^{}"]|"[^"]*"|\{[^{}]*\})*\})')


def usage_of(body: bytes) -> dict[str, object] | None:
    """The usage object of a complete response: only that object is parsed (it comes last in
    what engines send), the whole body only when it cannot be cut out."""
    at = body.rfind(b'"usage"')
    if at < 0:
        return None
    m = _USAGE_OBJECT.match(body, at)
    try:
        usage = orjson.loads(m.group(1)) if m else orjson.loads(body).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None


def _headers(request_id: str, content_type: bytes, extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    h = [(b"content-type", content_type), (b"x-request-id", request_id.encode())]
    h += [(k.encode(), v.encode()) for k, v in extra.items()]
    return h


def sse_error_event(status: int, message: str, code: str) -> bytes:
    body = {"error": {"message": message, "type": "upstream_error", "param": None, "code": code}}
    return b"data: " + orjson.dumps(body) + b"\n\n"


class _EndEarly(Exception):
    """The stream broke off and cannot continue: end it with an error event."""

    def __init__(self, err: UpstreamError, verdict: Verdict) -> None:
        self.err, self.verdict = err, verdict


def ended_early(exchange: Exchange, opened: Opened, exc: BaseException) -> tuple[UpstreamError, Verdict]:
    """Why a response broke off after it started, and whom to blame."""
    attempt = opened.attempt
    if exchange.aborted:
        return UpstreamError(f"the gateway is shutting down: {exchange.aborted}"), Verdict.CLIENT_GONE
    if attempt.expired:
        return deadline_error(attempt), Verdict.DEADLINE
    if isinstance(exc, ErrorEvent):
        return UpstreamProtocolError(f"worker {attempt.worker.id} sent an error event: {exc}"), Verdict.WORKER_FAULT
    return map_client_error(exc, attempt.worker), Verdict.WORKER_FAULT


class StreamRelay:
    sets_request_id = True  # (api/app.py sends without the request-id wrapper)

    def __init__(self, opened: Opened, exchange: Exchange, *, include_usage: bool, model: str,
                 finish: Finish, headers: dict[str, str], link: ClientLink,
                 prompt_tokens: asyncio.Future[int | None] | None = None,
                 transform: Callable[[bytes], bytes] | None = None,
                 migration: Migration | None = None, started: bool = False) -> None:
        self.opened = opened
        self.migration = migration  # continues the stream on another worker (api/migration.py)
        self.started = started  # the response head went out already (a cold-start hold)
        self.exchange = exchange
        self.link = link
        self.transform = transform  # optional byte rewrite of each piece (e.g. reasoning mirror)
        self.prompt_tokens = prompt_tokens  # counted by the gateway for engines without usage
        self.include_usage = include_usage
        self.model = model
        self.finish = finish
        self.headers = headers

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        opened, exchange, link = self.opened, self.exchange, self.link
        attempt, resp = opened.attempt, opened.response
        migration = self.migration
        out = Outcome()
        link.attach(resp)
        verdict, message = Verdict.CLIENT_GONE, ""
        usage_seen = False
        events = 0
        sent_all = False  # the last byte went out: a disconnect after it is the normal end
        held = b""  # a trailing [DONE] is held back so a usage chunk can go before it
        first_output = _FIRST_OUTPUT.search
        monotonic = time.monotonic
        t0 = exchange.t0
        piece = opened.first
        try:
            if not self.started:
                await send({"type": "http.response.start", "status": 200,
                            "headers": _headers(exchange.request_id, b"text/event-stream", {
                                "cache-control": "no-cache", **self.headers})})
            while True:  # one pass per worker: more than one when the stream migrates
                try:
                    read_chunk = resp.read_chunk
                    while True:
                        if migration is not None:
                            piece = migration.take(piece)
                        if out.ttft_s is None and first_output(piece):
                            out.ttft_s = time.perf_counter() - t0
                        if b'"usage":{' in piece or b'"usage": {' in piece:
                            piece, usage_seen = self._take_usage(piece, out) or (piece, usage_seen)
                        if not usage_seen:  # engines that never send usage: count content events
                            events += (piece.count(b'"content": "') + piece.count(b'"content":"')
                                       + piece.count(b'"text":"'))
                        if self.transform is not None:
                            piece = self.transform(piece)
                        if held:
                            piece, held = held + piece, b""
                        if piece.endswith(DONE):
                            piece, held = piece[: -len(DONE)], DONE
                        if piece:
                            await send({"type": "http.response.body", "body": piece, "more_body": True})
                        piece = await read_chunk()
                        if not piece:
                            break
                        attempt.last_byte_at = monotonic()
                    break
                except UPSTREAM_ERRORS as exc:
                    # the traceback would keep this frame (and the relay) alive as long as the
                    # exception object lives: drop it once caught
                    exc.__traceback__ = None
                    if link.disconnected and not exchange.aborted:
                        return  # (finally) the client left: we closed the upstream ourselves
                    err, verdict = ended_early(exchange, opened, exc)
                    nxt = None
                    if migration is not None and not exchange.aborted:
                        nxt = await migration.resume(opened, err, verdict)
                    if nxt is None:
                        if link.disconnected:
                            return
                        raise _EndEarly(err, verdict) from None
                    opened, attempt, resp, piece, held = nxt, nxt.attempt, nxt.response, nxt.first, b""
                    link.attach(resp)
            attempt.complete = True
            verdict = Verdict.SUCCESS
            if not usage_seen:
                out.completion_tokens = events
                if self.include_usage:  # the client waits for this count; otherwise it is metrics only
                    out.prompt_tokens = await self._counted_prompt_tokens()
            tail = held
            if self.include_usage and not usage_seen:
                tail = self._usage_chunk(out) + (held or DONE)
            elif not held:
                tail = DONE  # the engine ended without [DONE]: close the stream properly
            await send({"type": "http.response.body", "body": tail, "more_body": False})
            sent_all = True
            link.close()
            if not usage_seen and not self.include_usage:
                out.prompt_tokens = await self._counted_prompt_tokens()
        except _EndEarly as end:
            err, verdict = end.err, end.verdict
            message = err.message
            out.status, out.error = err.status, err.message
            if not usage_seen:
                out.completion_tokens = events
            try:
                await send({"type": "http.response.body", "more_body": False,
                            "body": sse_error_event(err.status, err.message, err.code or "upstream_error") + DONE})
                sent_all = True
            except OSError:
                pass
        except asyncio.CancelledError:
            log.debug("stream %s: cancelled", exchange.request_id)
            raise
        except OSError as exc:  # the client went away while we were sending
            log.debug("stream %s: client gone while sending: %r", exchange.request_id, exc)
        finally:
            link.close()
            out.disconnected = not sent_all and (link.disconnected or verdict is Verdict.CLIENT_GONE)
            if out.disconnected:
                out.status = 499
                verdict = Verdict.CLIENT_GONE
            if migration is not None and migration.workers:
                out.extra["workers"] = ",".join(migration.workers)
            exchange.close(verdict, message)
            self.finish(out)

    def _take_usage(self, piece: bytes, out: Outcome) -> tuple[bytes, bool] | None:
        """Parse the events of a piece holding a usage object; drop the usage-only chunk
        unless the client asked for it (we may have asked the engine on its behalf)."""
        kept: list[bytes] = []
        found = False
        for event in piece.split(b"\n\n"):
            if event.startswith(b"data: {") and any(m in event for m in _USAGE_MARKERS):
                try:
                    data = orjson.loads(event[6:])
                except orjson.JSONDecodeError:
                    return None  # split across pieces: forward as is
                usage = data.get("usage") if isinstance(data, dict) else None
                if isinstance(usage, dict):
                    out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    out.completion_tokens = int(usage.get("completion_tokens") or 0)
                    out.cached_tokens = cached_tokens_of(usage)
                    found = True
                    if not data.get("choices") and not self.include_usage:
                        continue
            kept.append(event)
        return b"\n\n".join(kept), found

    async def _counted_prompt_tokens(self) -> int:
        if self.prompt_tokens is None:
            return 0
        try:
            return await asyncio.wait_for(asyncio.shield(self.prompt_tokens), 2.0) or 0
        except (TimeoutError, Exception):
            return 0

    def _usage_chunk(self, out: Outcome) -> bytes:
        usage = {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
                 "total_tokens": out.prompt_tokens + out.completion_tokens}
        chunk = {"id": f"chatcmpl-{self.exchange.request_id}", "object": "chat.completion.chunk",
                 "created": int(time.time()), "model": self.model, "choices": [], "usage": usage}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


class BodyRelay:
    """A complete (non-streaming) upstream response, read fully then sent in one piece."""

    sets_request_id = True  # (api/app.py sends without the request-id wrapper)

    def __init__(self, opened: Opened, exchange: Exchange, *, finish: Finish, headers: dict[str, str],
                 link: ClientLink, transform: Callable[[bytes], bytes] | None = None) -> None:
        self.opened = opened
        self.exchange = exchange
        self.link = link
        self.finish = finish
        self.headers = headers
        self.transform = transform

    async def read(self) -> tuple[int, bytes, Outcome]:
        """Read the whole body (the verdict is the caller's)."""
        resp, attempt = self.opened.response, self.opened.attempt
        out = Outcome(status=resp.status)
        body = await resp.read()
        attempt.complete = True
        attempt.last_byte_at = time.monotonic()
        usage = usage_of(body)
        if usage is not None:
            try:
                out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                out.completion_tokens = int(usage.get("completion_tokens") or 0)
                out.cached_tokens = cached_tokens_of(usage)
            except (TypeError, ValueError):
                pass
        return resp.status, body, out

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        exchange, link = self.exchange, self.link
        link.attach(self.opened.response)  # a client giving up on a long generation frees the engine too
        try:
            status, body, out = await self.read()
            exchange.close(Verdict.SUCCESS)
            if self.transform is not None:
                body = self.transform(body)
        except UPSTREAM_ERRORS as exc:
            exc.__traceback__ = None  # see StreamRelay
            if link.disconnected and not exchange.aborted:  # the client left: no verdict on the worker
                link.close()
                exchange.close(Verdict.CLIENT_GONE)
                self.finish(Outcome(status=499, disconnected=True))
                return
            err, verdict = ended_early(exchange, self.opened, exc)
            exchange.close(verdict, err.message)
            out = Outcome(status=err.status, error=err.message)
            status, body = err.status, orjson.dumps(err.body())
        except BaseException:
            link.close()
            exchange.close(Verdict.CLIENT_GONE)
            raise
        link.close()
        try:
            await send({"type": "http.response.start", "status": status,
                        "headers": _headers(exchange.request_id, b"application/json", self.headers)
                        + [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except OSError:
            out.disconnected = True
        finally:
            self.finish(out)
