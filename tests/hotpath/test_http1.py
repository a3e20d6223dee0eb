"""The generation client (upstream/http1.py) against scripted HTTP/1.1 servers on loopback:
keep-alive reuse, a kept-alive connection the server closed, streamed and broken bodies,
back-pressure, aborts."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from sglfleet.upstream import http1

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    @classmethod
    def answering(cls, raw: bytes) -> Server:
        """A server that reads one request, answers with `raw` and closes."""
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await srv.read_request(reader)
            writer.write(raw)

        srv = cls(handler)
        return srv

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return body


def ok(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), b"".join(extra), body)


async def test_keep_alive_connection_is_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await srv.read_request(reader)
            writer.write(ok(b"echo:" + (body or b"")))

    async with Server(handler) as srv:
        client = http1.Client()
        for i in range(3):
            resp = await client.post(srv.url + "/base", "/v1/x", b"n%d" % i, {"content-type": "application/json"})
            assert resp.status == 200 and await resp.read() == b"echo:n%d" % i
            resp.release()
        assert srv.connections == 1
        assert srv.requests[0].startswith(b"POST /base/v1/x HTTP/1.1\r\nhost: 127.0.0.1:")
        assert b"content-type: application/json\r\n" in srv.requests[0]
        await client.close()


async def test_a_kept_alive_connection_the_server_closed_is_replaced() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(ok(b"one"))  # says keep-alive, then closes without reading the next request
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    async with Server(handler) as srv:
        client = http1.Client()
        resp = await client.post(srv.url, "/", b"a", {})
        assert await resp.read() == b"one"
        resp.release()
        await asyncio.sleep(0.05)  # the server's close may or may not have been seen yet
        resp = await client.post(srv.url, "/", b"b", {})
        assert await resp.read() == b"one"
        assert srv.connections == 2
        await client.close()


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        writer.write(b"5\r\nfirst\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with Server(handler) as srv:
        client = http1.Client()
        resp = await client.post(srv.url, "/", b"{}", {})
        assert resp.headers["content-type"] == "text/event-stream"
        assert await resp.read_chunk() == b"first"  # before the rest was even sent
        release.set()
        assert [p async for p in resp] == [b"second"]
        assert resp.complete
        await client.close()


async def test_a_body_that_breaks_off_is_an_error() -> None:
    async with Server.answering(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b") as srv:
        client = http1.Client()
        resp = await client.post(srv.url, "/", b"", {})
        with pytest.raises(http1.BodyError):
            await resp.read()
        await client.close()


async def test_a_body_ended_by_the_connection_is_complete() -> None:
    async with Server.answering(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it") as srv:
        client = http1.Client()
        resp = await client.post(srv.url, "/", b"", {})
        assert await resp.read() == b"all of it"
        resp.release()
        assert not client._idle.get(next(iter(client._origins.values())))  # not reusable
        await client.close()


async def test_closing_wakes_a_pending_read_and_resets_the_connection() -> None:
    lost = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client goes away (the engine would abort here)
        lost.set()

    async with Server(handler) as srv:
        client = http1.Client()
        resp = await client.post(srv.url, "/", b"", {})
        reading = asyncio.ensure_future(resp.read_chunk())
        await asyncio.sleep(0.05)
        resp.close()
        with pytest.raises(http1.Closed):
            await reading
        await asyncio.wait_for(lost.wait(), 5)
        await client.close()


async def test_a_slow_reader_pauses_the_socket() -> None:
    size = 4 << 20

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()

    async with Server(handler) as srv:
        client = http1.Client()
        resp = await client.post(srv.url, "/", b"", {})
        await asyncio.sleep(0.3)  # the server could have sent everything by now
        assert resp._buffered < size // 2
        got = len(await resp.read())
        assert got == size
        await client.close()


async def test_connect_failure_and_bad_headers() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    client = http1.Client(connect_timeout_s=2)
    with pytest.raises(http1.ConnectFailed):
        await client.post(f"http://127.0.0.1:{port}", "/", b"", {})
    with pytest.raises(http1.ClientError, match="line break"):
        await client.post(f"http://127.0.0.1:{port}", "/", b"", {"x-id": "a\r\nx-injected: 1"})
    await client.close()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return key, cert


async def test_https_with_certificate_verification(self_signed: tuple[Path, Path]) -> None:
    key, cert = self_signed
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await srv.read_request(reader)
            writer.write(ok(b"over tls"))

    async with Server(handler, server_ctx) as srv:
        untrusting = http1.Client()
        with pytest.raises(http1.ConnectFailed, match="SSLCertVerificationError"):
            await untrusting.post(srv.url, "/", b"", {})  # a self-signed certificate is refused
        trusting = http1.Client()
        trusting._ssl = ssl.create_default_context(cafile=str(cert))
        for _ in range(2):
            resp = await trusting.post(srv.url, "/", b"x", {})
            assert await resp.read() == b"over tls"
            resp.release()
        assert srv.connections == 1  # one kept-alive connection (the refused handshake never got in)
        assert srv.requests[0].startswith(b"POST / HTTP/1.1\r\nhost: 127.0.0.1:")
        await trusting.close()


async def test_interim_1xx_responses_are_skipped_and_do_not_cross_requests() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while True:
            await srv.read_request(reader)
            n += 1
            writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n"
                         + ok(b"answer-%d" % n))

    async with Server(handler) as srv:
        client = http1.Client()
        for n in (1, 2):
            resp = await client.post(srv.url, "/", b"", {})
            assert (resp.status, await resp.read()) == (200, b"answer-%d" % n)
            assert "link" not in resp.headers
            resp.release()
        assert srv.connections == 1
        await client.close()


async def test_a_reset_ends_an_unframed_body_with_an_error_not_a_short_answer() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\npartial-")  # delimited by the connection's end
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset

    async with Server(handler) as srv:
        client = http1.Client()
        resp = await client.post(srv.url, "/", b"", {})
        with pytest.raises(http1.BodyError):
            await resp.read()
        await client.close()


async def test_a_request_the_engine_may_have_run_is_not_sent_twice() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(ok(b"warm"))
        await srv.read_request(reader)  # a long non-streamed generation, then the engine dies
        await asyncio.sleep(0.5)

    async with Server(handler) as srv:
        client = http1.Client()
        resp = await client.post(srv.url, "/", b"warm", {})
        assert await resp.read() == b"warm"
        resp.release()
        with pytest.raises(http1.Disconnected):
            await client.post(srv.url, "/", b"gen", {})
        assert srv.requests[-1].endswith(b"gen") and len(srv.requests) == 2  # sent once
        await client.close()


async def test_a_protocol_switch_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
        await asyncio.sleep(0.5)

    async with Server(handler) as srv:
        client = http1.Client()
        with pytest.raises(http1.BodyError, match="101"):
            resp = await client.post(srv.url, "/", b"", {})
            await resp.read()
        await client.close()
