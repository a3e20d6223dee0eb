"""The HTTP/1.1 client for generation requests: keep-alive connections per worker, httptools'
parser (llhttp, the one uvicorn uses), bodies streamed with back-pressure.

Why not aiohttp here: measured alone (benchmarks/overhead/clients.py), aiohttp costs 0.28 ms
of CPU per non-streamed request and 0.73 ms per 32-token stream (multidict headers, timer
handles, the payload registry, the stream reader layers), pyreqwest 0.18 / 0.49 ms, this client
0.07 / 0.47 ms. It does only what the request core needs: POST a body, read the head, read the
body piece by piece or whole, abort.
Timeouts are not its business: the fleet's deadline ticker expires attempts and `close()`s
their responses (core/exchange.py); only connecting is bounded here. Health checks and other
control-plane requests keep using aiohttp.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

# Idle connections are dropped after this long: below uvicorn's default keep-alive (5 s),
# the server most engines use, so a reused connection is rarely one the server is closing.
IDLE_S = 4.0
_STALE_S = 0.25  # a reused connection lost this soon after a send was stale (the request is re-sent)
_HIGH_WATER = 1 << 18  # buffered body bytes before the socket is paused (resumed once read)


class ClientError(Exception):
    """An engine request failed at the HTTP level."""


class ConnectFailed(ClientError):
    """No connection could be made."""


class Disconnected(ClientError):
    """The connection closed before the response head."""


class BodyError(ClientError):
    """The response broke off, or was not valid HTTP."""


class Closed(ClientError):
    """The response was closed by us (a deadline, a client gone) while someone read it."""


@dataclass(frozen=True, slots=True)
class _Origin:
    host: str
    port: int
    tls: bool
    prefix: bytes  # the base URL's path, put before every request path
    head: bytes  # the request line's tail and the Host header


def _origin(base: str) -> _Origin:
    u = urlsplit(base)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"not an http(s) URL: {u.scheme}://{u.hostname or ''}")
    tls = u.scheme == "https"
    port = u.port or (443 if tls else 80)
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    host_header = host if port == (443 if tls else 80) else f"{host}:{port}"
    return _Origin(u.hostname, port, tls, u.path.rstrip("/").encode(),
                   b" HTTP/1.1\r\nhost: " + host_header.encode() + b"\r\n")


class Response:
    """One response: the head once `Client.post` returns, the body read piece by piece
    (`read_chunk`, `async for`) or whole (`read`). `close()` aborts it at any point, waking a
    pending read with `Closed`; `release()` hands a fully read connection back for reuse."""

    __slots__ = ("status", "headers", "_conn", "_chunks", "_buffered", "_eof", "_error", "_waiter",
                 "_head", "_got_bytes", "_framed")

    def __init__(self, conn: _Connection) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._conn: _Connection | None = conn
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._error: ClientError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._head: asyncio.Future[None] = conn.loop.create_future()
        self._got_bytes = False  # any byte of this response arrived
        self._framed = False  # the body has a length or chunked framing (not ended by closing)

    @property
    def complete(self) -> bool:
        return self._eof and not self._chunks

    async def read_chunk(self) -> bytes:
        """Whatever body bytes have arrived (waiting for some); b"" at the end."""
        while not self._chunks:
            if self._eof:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = self._conn.loop.create_future() if self._conn else None
            if self._waiter is None:
                raise Closed("the response is closed")
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if self._buffered > _HIGH_WATER and self._conn is not None:
            self._conn.resume()
        self._buffered = 0
        return data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read_chunk()
        if not data:
            raise StopAsyncIteration
        return data

    async def read(self) -> bytes:
        """The whole (rest of the) body."""
        parts = []
        while data := await self.read_chunk():
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        """Abort: the connection is closed unless the body was read to its end."""
        if self.complete:
            self.release()
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
        self._fail(Closed("the response is closed"))

    def release(self) -> None:
        """Back to the pool when read to its end on a keep-alive connection; closed otherwise."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self.complete:
            conn.done_with(self)
        else:
            conn.abort()
            self._fail(Closed("the response is closed"))

    # --- fed by the connection ---

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _end(self) -> None:
        self._eof = True
        self._wake()

    def _fail(self, err: ClientError) -> None:
        if self._eof or self._error is not None:
            return
        self._error = err
        if not self._head.done():
            self._head.set_exception(err)
            self._head.exception()  # retrieved: nobody may be waiting any more
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)


class _Connection(asyncio.Protocol):
    __slots__ = ("client", "origin", "loop", "transport", "parser", "resp", "idle_since", "lost",
                 "keep_alive", "_paused", "_interim", "sent_at")

    def __init__(self, client: Client, origin: _Origin) -> None:
        self.client = client
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.resp: Response | None = None
        self.idle_since = 0.0
        self.lost = False
        self.keep_alive = False
        self._paused = False
        self._interim = False  # parsing a 1xx (100 Continue, 103 Early Hints): not the response
        self.sent_at = 0.0

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's are not asyncio.Transport subclasses)

    def data_received(self, data: bytes) -> None:
        resp = self.resp
        if resp is None or self.parser is None:  # bytes nobody asked for: the connection is unusable
            self.abort()
            return
        resp._got_bytes = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:  # (a 101: no upgrades here)
            self.abort()
            resp._fail(BodyError(f"invalid HTTP response: {exc.__class__.__name__}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.parser = None  # (it holds our bound callbacks: no cycle left for the collector)
        self.client._forget(self)
        resp, self.resp = self.resp, None
        if resp is None or resp._eof:
            return
        if not resp._head.done():
            resp._fail(Disconnected("the connection closed before the response head"))
        elif not resp._framed and exc is None:
            resp._end()  # a body delimited by the connection's (orderly) end: complete
        else:
            resp._fail(BodyError("the response body broke off"))

    # --- httptools callbacks ---

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.resp is not None
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key == "content-length" or key == "transfer-encoding" and "chunked" in text.lower():
            self.resp._framed = True
        self.resp.headers[key] = text

    def on_headers_complete(self) -> None:
        resp = self.resp
        assert resp is not None and self.parser is not None
        status = self.parser.get_status_code()
        if status == 101:  # a protocol switch nobody asked for
            self.abort()
            resp._fail(BodyError("the engine switched protocols (HTTP 101)"))
            return
        if 100 <= status < 200:  # interim: the response follows on this connection
            self._interim = True
            resp.headers.clear()
            resp._framed = False
            return
        resp.status = status
        if status == 204 or status == 304:
            resp._framed = True
        if not resp._head.done():
            resp._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.resp is not None:
            self.resp._feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()
        if self.resp is not None:
            self.resp._end()

    # --- used by the client and the response ---

    def send(self, resp: Response, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        self.resp = resp
        self.keep_alive = False
        self.sent_at = time.monotonic()
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.lost:
            self._paused = False
            self.transport.resume_reading()

    def done_with(self, resp: Response) -> None:
        if self.resp is not resp:
            return
        self.resp = None
        if self.keep_alive and not self.lost and not self._paused:
            self.client._park(self)
        else:
            self.abort()

    def abort(self) -> None:
        self.resp = None
        if self.transport is not None and not self.lost:
            self.transport.abort()  # no lingering: the engine must see the reset and stop generating


class Client:
    """Keep-alive connections per worker origin; no limit on how many (the pools' limiters
    bound concurrency)."""

    def __init__(self, *, connect_timeout_s: float = 5.0, idle_s: float = IDLE_S) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.idle_s = idle_s
        self._origins: dict[str, _Origin] = {}
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def post(self, base: str, path: str, body: bytes, headers: dict[str, str]) -> Response:
        """Send `body` to `base + path`; returns once the response head arrived."""
        origin = self._origins.get(base)
        if origin is None:
            if len(self._origins) >= 1024:  # workers come and go (discovery): keep the cache bounded
                self._origins.clear()
            origin = self._origins[base] = _origin(base)
        head = [b"POST ", origin.prefix, path.encode(), origin.head]
        for k, v in headers.items():
            if "\r" in v or "\n" in v or "\r" in k or "\n" in k:
                raise ClientError(f"header {k!r} holds a line break")
            head.append(f"{k}: {v}\r\n".encode())
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        request = b"".join(head)
        conn = self._take(origin)
        while True:
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin)
            resp = Response(conn)
            conn.send(resp, request, body)
            try:
                await resp._head
            except Disconnected:
                # a kept-alive connection the server was closing as we sent: nothing came back and
                # it went at once, so the request was never read. Later, the engine may have run
                # it: not sent twice.
                if reused and not resp._got_bytes and time.monotonic() - conn.sent_at < _STALE_S:
                    conn = None
                    continue
                raise
            except BaseException:
                conn.abort()
                raise
            return resp

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for c in conns:
                c.abort()
        self._idle.clear()

    def _take(self, origin: _Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        if not conns:
            return None
        now = time.monotonic()
        while conns:
            c = conns.pop()
            if not c.lost and now - c.idle_since < self.idle_s and not c.transport.is_closing():  # type: ignore[union-attr]
                return c
            c.abort()
        return None

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = None
        if origin.tls:
            tls = self._ssl = self._ssl or ssl.create_default_context()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(lambda: _Connection(self, origin), origin.host, origin.port,
                                                       ssl=tls, server_hostname=origin.host if tls else None)
        except TimeoutError:
            raise ConnectFailed(f"no connection within {self.connect_timeout_s:g}s") from None
        except OSError as exc:
            raise ConnectFailed(exc.__class__.__name__) from None
        return conn

    def _park(self, conn: _Connection) -> None:
        if self._closed:
            conn.abort()
            return
        conn.idle_since = now = time.monotonic()
        conns = self._idle.setdefault(conn.origin, [])
        while conns and now - conns[0].idle_since > self.idle_s:  # the oldest first: drop the expired
            conns.pop(0).abort()
        conns.append(conn)

    def _forget(self, conn: _Connection) -> None:
        conns = self._idle.get(conn.origin)
        if conns is None:
            return
        if conn in conns:
            conns.remove(conn)
        if not conns:
            del self._idle[conn.origin]  # (a worker gone for good leaves nothing behind)
