"""What one client connection may cost: head size and time, open connections, keep-alive.

uvicorn (0.35) has no limit on the size of a request head with httptools, no deadline for a
head to arrive (a socket that never sends stays open for ever), and only a concurrency check
that runs after the head was read. `LimitedHttpTools` adds those limits to uvicorn's
httptools protocol; `uvicorn_options` turns `gateway.limits` into the uvicorn.Config
arguments. The body deadline lives where the body is read (`api/body.py`).

- head > `max_header_bytes`: 431 in the OpenAI error shape, then the connection closes. The
  head is counted as it arrives, before httptools buffers it, so a 100 MB header costs at
  most `max_header_bytes` of memory.
- head not complete `header_timeout_s` after the connection opened (or after the first byte
  of a request on a kept-alive connection): the socket is closed.
- more than `max_connections` open connections in this process (both ports): 503 and close,
  at once, without reading the request.
- a response that ends before its request body was read to the end (e.g. 401 before an
  upload finished, 408): the connection closes instead of parsing the rest of the body.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sglfleet.api.body import BODY_COMPLETE
from sglfleet.api.link import DISCONNECT_WATCH
from sglfleet.config import ServerLimits
from sglfleet.core.errors import error_body

log = logging.getLogger("sglfleet.api")

AUTO_MAX_CONNECTIONS = 10_000
LINGER_S = 1.0  # after a 431, the rest of an oversized head is read and dropped this long,
LINGER_BYTES = 1 << 20  # or up to this many bytes, then the socket closes
UNREAD_BODY_LINGER_BYTES = 16 << 20  # a body refused unread (413, 401): room for the rest of it
_REJECTION_LOG_EVERY_S = 10.0


def raise_nofile_limit() -> int:
    """Raise this process's soft open-file limit to the hard one; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return int(soft)


def max_connections(limits: ServerLimits) -> int:
    """The configured cap, or half the open-file limit (the other half is left for engine
    connections, logs and sockets), at most AUTO_MAX_CONNECTIONS."""
    if limits.max_connections is not None:
        return limits.max_connections
    return max(1, min(AUTO_MAX_CONNECTIONS, raise_nofile_limit() // 2))


def _response(status: int, reason: bytes, message: str, code: str, type_: str,
              extra: tuple[bytes, ...] = ()) -> bytes:
    body = orjson.dumps(error_body(status, message, type_, code=code))
    head = [b"HTTP/1.1 %d %s" % (status, reason), b"content-type: application/json",
            b"content-length: %d" % len(body), b"connection: close", *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class _Rejections:
    """Rate-limited warning for refused connections: one line per 10 s with the count."""

    def __init__(self) -> None:
        self.count = 0
        self.logged_at = float("-inf")

    def note(self, what: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= _REJECTION_LOG_EVERY_S:
            log.warning("%s (%d refused since the last such line)", what, self.count)
            self.count = 0
            self.logged_at = now


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; bound to a ServerLimits by
    `protocol_class` (uvicorn creates one instance per connection)."""

    max_header_bytes: ClassVar[int] = 32 * 1024
    header_timeout_s: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = AUTO_MAX_CONNECTIONS
    over_capacity: ClassVar[_Rejections]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request head (or waiting for one)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._closing_after_reject = False
        self._dropped = 0
        self._linger_bytes = LINGER_BYTES
        self._lingering = False
        self._lost_watch: Callable[[], None] | None = None
        self._running_scope: dict[str, Any] | None = None  # the request whose ASGI task runs

    # connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.transport = transport
            self._closing_after_reject = True
            self.over_capacity.note(f"connection refused with 503: {self.max_connections} connections open "
                                    "(gateway.limits.max_connections)")
            transport.write(_response(503, b"Service Unavailable", "the gateway has too many open connections; "
                                      "retry shortly", "too_many_connections", "service_unavailable",
                                      (b"retry-after: 1",)))
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._closing_after_reject and self.flow is None:  # refused in connection_made
            return
        super().connection_lost(exc)
        self._forget_watch()
        callback, self._lost_watch = self._lost_watch, None
        if callback is not None:
            callback()

    def _watch_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """`callback()` once if the connection is lost while the current request is answered
        (until the returned function is called): what a task waiting on `receive()` for
        "http.disconnect" learns, without the task."""
        self._lost_watch = callback

        def unwatch() -> None:
            if self._lost_watch is callback:
                self._lost_watch = None

        return unwatch

    def _forget_watch(self) -> None:
        # the scope of the request being answered: with pipelining, `self.cycle` may already be
        # the next request's
        scope, self._running_scope = self._running_scope, None
        ext = scope.get("extensions") if scope is not None else None
        if ext:
            ext.pop(DISCONNECT_WATCH, None)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._running_scope = cycle.scope
        super()._start_asgi_task(cycle, app)

    def data_received(self, data: bytes) -> None:
        if self._closing_after_reject:  # the rest of a refused request: dropped
            self._dropped += len(data)
            if self._dropped > self._linger_bytes:
                self.transport.close()
            return
        while data:
            if not self._in_head:
                super().data_received(data)
                return
            room = self.max_header_bytes - self._head_bytes
            part, data = data[:room], data[room:]
            self._head_bytes += len(part)
            super().data_received(part)
            if self.transport.is_closing() or self.parser is None:
                return
            if self._in_head and self._head_bytes:  # a head begun and not complete
                if self._head_bytes >= self.max_header_bytes:
                    self._reject_head()
                    return
                if self._head_timer is None:  # (a head that arrives whole never arms one)
                    self._arm_head_timer()

    # parser callbacks
    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        if self.cycle is not None:
            # for api/link.py: disconnects reported by callback (a scope extension; taken out
            # again when the response completes, so that scope and protocol form no cycle)
            self.scope.setdefault("extensions", {})[DISCONNECT_WATCH] = self._watch_disconnect
        if self.cycle is not None and self.parser is not None and self._has_body():
            # the response may close the connection before the body is read (401, 413, 408):
            # uvicorn then closes at once, and the unread bytes make the kernel answer with a
            # reset that can destroy the response; close it lingering instead
            self.cycle.transport = _LingeringTransport(self.transport, self)  # type: ignore[assignment]

    def _has_body(self) -> bool:
        headers = self.headers if isinstance(getattr(self, "headers", None), list) else []
        for name, value in headers:
            if name == b"content-length":
                return value.strip() not in (b"", b"0")
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                return True
        return False

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()
        cycle = self.cycle
        if cycle is not None and not cycle.more_body and not cycle.response_complete:
            ext = cycle.scope.get("extensions")
            if ext is not None:  # for api/body.py: one receive() returns the whole body at once
                ext[BODY_COMPLETE] = True

    def on_response_complete(self) -> None:
        self._forget_watch()
        # (with a pipelined request queued, the head just parsed and its unread body are that
        # request's: the one answered was read to its end)
        if not self._in_head and not self.pipeline and not self.transport.is_closing():
            # the response is over but its request body is not (a 413 on content-length, a 401
            # before the upload finished): do not parse the rest of it, but drop it for a moment
            # (a lingering close, as nginx does) so the client finishes writing and reads the
            # answer instead of a connection reset
            self._linger(UNREAD_BODY_LINGER_BYTES)
            return
        super().on_response_complete()

    # limits
    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()
            else:  # a response is still being written: end the connection after it
                self.cycle.keep_alive = False

    def _reject_head(self) -> None:
        self._cancel_head_timer()
        self._closing_after_reject = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined head while a response is being written
            return
        log.warning("request head over %d bytes from %s: 431 (gateway.limits.max_header_bytes)",
                    self.max_header_bytes, self.client[0] if self.client else "?")
        self.transport.write(_response(431, b"Request Header Fields Too Large",
                                       f"the request line and headers exceed {self.max_header_bytes} bytes",
                                       "request_header_fields_too_large", "invalid_request_error"))
        # half-close and drop what the client still sends for a moment, so that it can read
        # the 431 instead of a reset; the socket still counts towards max_connections
        self._linger(LINGER_BYTES)

    def _linger(self, max_bytes: int) -> None:
        if self._lingering:
            return
        self._lingering = self._closing_after_reject = True
        self._linger_bytes = max_bytes
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


class _LingeringTransport:
    """The transport a request with a body answers through:
    - the response head is held until the first body bytes written in the same loop step,
      so that a complete answer goes out in one send (one syscall, one segment) instead of
      two; anything else flushes it on the next loop step;
    - `close()` while the body is still unread is a lingering close (half-close, drop what
      still comes for a moment, then close), so that the client reads the answer instead of
      a connection reset."""

    __slots__ = ("_t", "_p", "_held", "_started")

    def __init__(self, transport: asyncio.Transport, protocol: LimitedHttpTools) -> None:
        self._t = transport
        self._p = protocol
        self._held: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:  # the head (or a 100 Continue)
            self._started = True
            self._held = data
            self._p.loop.call_soon(self._flush)
            return
        if self._held is not None:
            data, self._held = self._held + data, None
        self._t.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._t.is_closing():
                self._t.write(held)

    def is_closing(self) -> bool:
        return self._t.is_closing()

    def write_eof(self) -> None:
        self._flush()
        self._t.write_eof()

    def close(self) -> None:
        self._flush()
        p = self._p
        if not p._in_head and not self._t.is_closing():
            p._linger(UNREAD_BODY_LINGER_BYTES)  # (a no-op when it already lingers)
        elif not p._lingering:
            self._t.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


def protocol_class(limits: ServerLimits) -> type[LimitedHttpTools]:
    """A LimitedHttpTools subclass bound to `limits` (uvicorn takes a class, not an instance)."""
    attrs = {"max_header_bytes": limits.max_header_bytes, "header_timeout_s": limits.header_timeout_s,
             "max_connections": max_connections(limits), "over_capacity": _Rejections()}
    return type("GatewayHttpProtocol", (LimitedHttpTools,), attrs)


def uvicorn_options(limits: ServerLimits) -> dict[str, Any]:
    """uvicorn.Config arguments for `gateway.limits` (raises the soft open-file limit when
    `max_connections` is automatic)."""
    return {"http": protocol_class(limits), "timeout_keep_alive": limits.keep_alive_s}
