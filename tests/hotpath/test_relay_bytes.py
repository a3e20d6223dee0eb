"""What the gateway's stream relay must keep: SSE framing byte-for-byte (modulo per-request
ids and timestamps), the usage chunk only when asked for, one [DONE] at the end, pooled
keep-alive upstream connections, and an upstream that is closed when the client leaves."""

from __future__ import annotations

import re
import time

import httpx
import psutil
import pytest

from sglfleet.api.relay import _FIRST_OUTPUT
from sglfleet.sim.process import SimProcess
from tests.fleetproc import GatewayProc, wait_for

_VOLATILE = re.compile(rb'"id":"[^"]*"|"created":\d+')


def raw_stream(url: str, body: dict) -> bytes:
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return b"".join(r.iter_raw())


def body(max_tokens: int = 6, **kw: object) -> dict:
    return {"model": "bench", "max_tokens": max_tokens, "ignore_eos": True, "stream": True,
            "messages": [{"role": "user", "content": "Say something synthetic."}], **kw}


def normalised(raw: bytes) -> bytes:
    return _VOLATILE.sub(b"<volatile>", raw)


@pytest.mark.parametrize("include_usage", [False, True])
def test_sse_bytes_match_direct(sim: SimProcess, gateway: GatewayProc, include_usage: bool) -> None:
    # The gateway always asks the engine for usage (for its metrics), so compare with a direct
    # request that asked too; when the client did not ask, only the usage-only event goes.
    direct = raw_stream(sim.urls[0], body(stream_options={"include_usage": True}))
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    via = raw_stream(gateway.url, body(**extra))
    if not include_usage:
        events = direct.split(b"\n\n")
        direct = b"\n\n".join(e for e in events if b'"choices":[],"usage":{' not in e)
    assert normalised(via) == normalised(direct)
    assert via.endswith(b"data: [DONE]\n\n") and via.count(b"[DONE]") == 1
    assert (b'"usage":{' in via) is include_usage  # usage requested on the client's behalf is dropped


def test_non_streaming_body_is_forwarded_unchanged(sim: SimProcess, gateway: GatewayProc) -> None:
    b = body(stream=False)
    direct = httpx.post(sim.urls[0] + "/v1/chat/completions", json=b, timeout=30)
    via = httpx.post(gateway.url + "/v1/chat/completions", json=b, timeout=30)
    assert via.status_code == 200
    assert int(via.headers["content-length"]) == len(via.content)
    assert normalised(via.content) == normalised(direct.content)


def test_upstream_connections_are_reused(sim: SimProcess, gateway: GatewayProc) -> None:
    port = int(sim.urls[0].rsplit(":", 1)[1])

    def upstream_conns() -> set[int]:
        conns = psutil.Process(gateway.proc.pid).net_connections(kind="tcp")
        return {c.laddr.port for c in conns if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"}

    seen: set[int] = set()
    for _ in range(6):  # sequential streams; look at the gateway's upstream sockets mid-stream
        with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body(4), timeout=30) as r:
            it = r.iter_raw()
            next(it)
            seen |= upstream_conns()
            for _ in it:
                pass
    # one pooled connection for the streams (plus the control plane's: health check, heartbeat),
    # not one per stream
    assert 1 <= len(seen) <= 3, f"upstream sockets used by 6 sequential streams: {sorted(seen)}"


def test_client_disconnect_aborts_upstream(sim: SimProcess, gateway: GatewayProc) -> None:
    def active() -> list[str]:
        return httpx.get(sim.urls[0] + "/sim/state", timeout=5).json()["rids"]

    assert wait_for(lambda: not active(), 10)
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body(500), timeout=30) as r:
        it = r.iter_raw()
        got = b""
        while got.count(b"data: ") < 3:
            got += next(it)
        assert active(), "the request should be running upstream"
    t0 = time.monotonic()  # leaving the block closed the client connection ~10 s before the end
    assert wait_for(lambda: not active(), 5), "upstream generation was not aborted"
    assert time.monotonic() - t0 < 5


def test_first_output_marker() -> None:
    role_only = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    assert _FIRST_OUTPUT.search(role_only) is None
    assert _FIRST_OUTPUT.search(b'{"delta":{"content":"sim-1"}}')
    assert _FIRST_OUTPUT.search(b'{"text": "a"}')
    assert _FIRST_OUTPUT.search(b'{"delta":{"tool_calls":[{"id":"x"}]}}')


def test_access_line_is_one_plain_line(gateway: GatewayProc) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions", json=body(2, stream=False),
                   headers={"x-request-id": "hotpath-access-1"}, timeout=30)
    assert r.status_code == 200
    assert wait_for(lambda: "rid=hotpath-access-1 " in gateway.log(), 5)
    line = next(ln for ln in gateway.log().splitlines() if "rid=hotpath-access-1 " in ln)
    assert re.search(r"sglfleet\.access: rid=hotpath-access-1 model=bench worker=\S+ status=200 .* out=2 ", line)
