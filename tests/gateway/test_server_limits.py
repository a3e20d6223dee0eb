"""Server limits (`gateway.limits`): head size and time, body time, connection cap, keep-alive,
aborted uploads. A real `sglfleet serve` in front of a simulated worker, probed with raw
sockets on loopback."""

from __future__ import annotations

import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from sglfleet.api.server_limits import AUTO_MAX_CONNECTIONS, protocol_class, uvicorn_options
from sglfleet.config import ServerLimits
from sglfleet.sim import SimConfig, SimProcess, find_free_ports
from tests.fleetproc import GatewayProc, start_gateway, wait_for

BODY = {"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hello there"}]}
HEADER_TIMEOUT_S = 3.0
BODY_TIMEOUT_S = 1.5
KEEP_ALIVE_S = 1.0
CAP = 12


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    sp = SimProcess(SimConfig(model_name="m", ttft_ms=5, itl_ms=2), port=find_free_ports(1), workers=1).start()
    yield sp
    sp.stop()


def _gateway(tmp: Path, sim: SimProcess, **limits: object) -> GatewayProc:
    return start_gateway(tmp, {"gateway": {"limits": limits},
                               "models": [{"name": "m", "engine": "external", "urls": sim.urls}]})


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, sim: SimProcess) -> Iterator[GatewayProc]:
    gp = _gateway(tmp_path_factory.mktemp("limits"), sim, header_timeout_s=HEADER_TIMEOUT_S,
                  body_timeout_s=BODY_TIMEOUT_S, keep_alive_s=KEEP_ALIVE_S, max_connections=2000)
    yield gp
    gp.stop()


def _connect(gp: GatewayProc) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", gp.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _read_response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a content-length body, read until the body is complete."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (ln.split(":", 1) for ln in lines[1:]))
    while len(body) < int(headers.get("content-length", 0)):
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _closed_by_server(s: socket.socket, timeout: float) -> bool:
    """True when the server closes `s` (EOF or reset) within `timeout`; data is discarded."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def _chat_ok(gp: GatewayProc) -> int:
    return httpx.post(gp.url + "/v1/chat/completions", json=BODY, timeout=30).status_code


def _status(client: httpx.Client, url: str) -> int | None:
    try:
        return client.get(url).status_code
    except httpx.HTTPError:
        return None


# -- configuration reaches uvicorn ------------------------------------------------------------

def test_limits_reach_the_protocol_and_uvicorn() -> None:
    opts = uvicorn_options(ServerLimits(max_header_bytes=4096, header_timeout_s=2.5, max_connections=7,
                                        keep_alive_s=9))
    cls = opts["http"]
    assert (cls.max_header_bytes, cls.header_timeout_s, cls.max_connections) == (4096, 2.5, 7)
    assert opts["timeout_keep_alive"] == 9
    auto = protocol_class(ServerLimits()).max_connections
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]  # (raised to the hard limit by now)
    assert auto == max(1, min(AUTO_MAX_CONNECTIONS, soft // 2))


# -- request head ------------------------------------------------------------------------------

def test_64kb_header_gets_431_and_the_gateway_keeps_serving(gw: GatewayProc) -> None:
    r = httpx.get(gw.url + "/health", headers={"x-big": "a" * 65536}, timeout=10)
    assert r.status_code == 431
    err = r.json()["error"]
    assert err["code"] == "request_header_fields_too_large" and "32768 bytes" in err["message"]
    assert r.headers["connection"] == "close"
    # a head just under the limit is served
    assert httpx.get(gw.url + "/health", headers={"x-big": "a" * 30000}, timeout=10).status_code == 200
    assert _chat_ok(gw) == 200


def test_huge_header_is_cut_off_not_buffered(gw: GatewayProc) -> None:
    """A 100 MB header: the gateway stops reading at the limit and closes the connection
    long before the client has sent it all (httptools alone would buffer all of it)."""
    s = _connect(gw)
    s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: ")
    piece = b"a" * (1 << 20)
    sent = 0
    with pytest.raises(OSError):  # reset or broken pipe once the gateway has closed
        while sent < 100:
            s.sendall(piece)
            sent += 1
        s.recv(1)
    s.close()
    assert sent < 100, "the gateway read a 100 MB header"
    assert _chat_ok(gw) == 200


@pytest.mark.slow
def test_300_slowloris_sockets_are_closed_while_requests_succeed(gw: GatewayProc) -> None:
    socks = [_connect(gw) for _ in range(300)]
    for s in socks:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        s.setblocking(False)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    open_ = set(socks)
    statuses: list[int] = []
    t0 = time.monotonic()
    next_byte = next_request = t0
    while open_ and time.monotonic() - t0 < 30:
        now = time.monotonic()
        if now >= next_byte:  # one more header byte a second on every socket still open
            for s in list(open_):
                try:
                    s.send(b"x")
                except OSError:
                    open_.discard(s)
                    sel.unregister(s)
            next_byte = now + 1.0
        if now >= next_request:
            statuses.append(_chat_ok(gw))
            next_request = time.monotonic() + 0.25
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                open_.discard(s)
                sel.unregister(s)
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()
    assert not open_, f"{len(open_)} of 300 slow sockets still open after {elapsed:.0f} s"
    assert len(statuses) >= 4 and set(statuses) == {200}, statuses


def test_socket_that_never_sends_is_closed(gw: GatewayProc) -> None:
    s = _connect(gw)
    assert _closed_by_server(s, HEADER_TIMEOUT_S + 10)
    s.close()



def test_second_head_trickled_on_a_kept_alive_connection_is_closed(gw: GatewayProc) -> None:
    """The head deadline also holds for the next request on a kept-alive connection (the
    timer is armed by a head left incomplete, not by the connection)."""
    s = _connect(gw)
    s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    assert _read_response(s)[0] == 200
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
    s.settimeout(0.5)
    t0 = time.monotonic()
    closed = False
    while time.monotonic() - t0 < HEADER_TIMEOUT_S + 15:
        try:  # a byte every half second: the keep-alive timer never fires, the head never ends
            s.send(b"x")
            if s.recv(65536) == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except OSError:
            closed = True
            break
    s.close()
    assert closed, "a head trickled on a kept-alive connection was never cut off"


# -- request body ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
def test_chunked_body_that_never_ends_gets_408(gw: GatewayProc, path: str) -> None:
    s = _connect(gw)
    s.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              "transfer-encoding: chunked\r\n\r\n".encode())
    answer: list[tuple[int, dict[str, str], bytes]] = []
    reader = threading.Thread(target=lambda: answer.append(_read_response(s)), daemon=True)
    reader.start()
    t0 = time.monotonic()
    # a chunk every 0.2 s: the body keeps arriving, it just never ends
    while reader.is_alive() and time.monotonic() - t0 < BODY_TIMEOUT_S + 20:
        try:
            s.sendall(b"1\r\n \r\n")
        except OSError:
            break
        reader.join(0.2)
    reader.join(5)
    assert answer, "no answer to a body that never ends"
    status, headers, body = answer[0]
    assert status == 408
    assert headers["connection"] == "close"
    if path.startswith("/v1/"):
        err = orjson.loads(body)["error"]
        assert err["code"] == "request_timeout" and err["type"] == "invalid_request_error"
    else:
        assert "did not arrive within 1.5 s" in orjson.loads(body)["error"]
    assert _closed_by_server(s, 10)
    s.close()



def test_body_sent_after_the_head_in_a_later_packet_is_read(gw: GatewayProc) -> None:
    """A body that is not in the server's buffer with the head is waited for (the path with a
    deadline), then answered normally."""
    body = orjson.dumps(BODY)
    s = _connect(gw)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              b"content-length: %d\r\n\r\n" % len(body))
    time.sleep(0.3)
    s.sendall(body[:10])
    time.sleep(0.2)
    s.sendall(body[10:])
    status, _, answer = _read_response(s)
    s.close()
    assert status == 200, answer
    assert orjson.loads(answer)["choices"][0]["message"]["content"]



def test_pipelined_request_whose_body_comes_later_is_answered(gw: GatewayProc) -> None:
    """Two requests pipelined, the second one's body in a later packet: the head already parsed
    and the body not yet read belong to the queued request, not to the one answered first."""
    body = orjson.dumps(BODY)
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body))
    s = _connect(gw)
    s.sendall(head + body + head)
    time.sleep(0.5)  # the first answer goes out while the second body is still missing
    s.sendall(body)
    answers = [_read_response(s), _read_response(s)]
    s.close()
    assert [a[0] for a in answers] == [200, 200], answers


def test_answer_before_the_body_ends_closes_the_connection(gw: GatewayProc) -> None:
    """A route that answers without reading the body (here /health; also a 401 before an
    upload): the connection closes instead of parsing a body that may never end."""
    s = _connect(gw)
    s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n1\r\n \r\n")
    status, _, _ = _read_response(s)
    assert status == 200
    for _ in range(10):  # the body keeps coming, which would hold off the keep-alive timeout
        try:
            s.sendall(b"1\r\n \r\n")
        except OSError:
            break
        time.sleep(0.1)
    assert _closed_by_server(s, 5)
    s.close()


def test_aborted_upload_is_one_log_line_without_traceback(gw: GatewayProc) -> None:
    s = _connect(gw)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-request-id: upload-aborted-1\r\n"
              b"content-type: application/json\r\ncontent-length: 100000\r\n\r\n" + b" " * 1000)
    time.sleep(0.3)
    s.close()
    assert wait_for(lambda: "rid=upload-aborted-1" in gw.log(), 10), gw.log()[-2000:]
    time.sleep(0.5)  # anything else logged about it would follow at once
    log = gw.log()
    lines = [ln for ln in log.splitlines() if "upload-aborted-1" in ln]
    assert len(lines) == 1 and "status=499" in lines[0] and "while sending the request body" in lines[0], lines
    assert "Traceback" not in log and "ClientDisconnect" not in log and "status=500" not in log


# -- keep-alive ------------------------------------------------------------------------------

def test_idle_keep_alive_connection_is_closed_after_keep_alive_s(gw: GatewayProc) -> None:
    s = _connect(gw)
    s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    status, headers, _ = _read_response(s)
    assert status == 200 and headers.get("connection") != "close"
    t0 = time.monotonic()
    assert _closed_by_server(s, KEEP_ALIVE_S + 5)
    assert time.monotonic() - t0 >= KEEP_ALIVE_S * 0.9  # not before the configured idle time
    s.close()


# -- connection cap ----------------------------------------------------------------------------

def test_connection_cap_gives_503_at_once_and_requests_under_it_succeed(tmp_path: Path, sim: SimProcess) -> None:
    gp = _gateway(tmp_path, sim, max_connections=CAP, header_timeout_s=60)
    held: list[socket.socket] = []
    try:
        client = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
        held = [_connect(gp) for _ in range(CAP - 1)]
        for _ in range(5):  # the last free place, used and given back by one request after another
            assert client.post(gp.url + "/v1/chat/completions", json=BODY).status_code == 200
        held.append(_connect(gp))
        # the cap is reached: a new connection is answered 503 before it sends anything
        s = _connect(gp)
        assert wait_for(lambda: s.recv(1, socket.MSG_PEEK) != b"", 10)
        status, headers, body = _read_response(s)
        assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close"
        assert orjson.loads(body)["error"]["code"] == "too_many_connections"
        assert _closed_by_server(s, 10)
        s.close()
        assert "connection refused with 503" in gp.log()
        held.pop().close()
        assert wait_for(lambda: _status(client, gp.url + "/health") == 200, 10)
        assert client.post(gp.url + "/v1/chat/completions", json=BODY).status_code == 200
        client.close()
    finally:
        for h in held:
            h.close()
        gp.stop()
