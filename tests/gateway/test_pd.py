"""Prefill/decode disaggregated routing against `sglfleet sim --role prefill|decode` workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sglfleet.sim import SimConfig, SimProcess, find_free_ports
from tests.fleetproc import GatewayProc, start_gateway, wait_for

HTTP = httpx.Client(timeout=60)


@pytest.fixture(scope="module")
def pd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProc, SimProcess, SimProcess]]:
    pre = SimProcess(SimConfig(model_name="sim", role="prefill", time_scale=0.2, bootstrap_timeout_s=3),
                     port=find_free_ports(2), workers=2).start()
    dec = SimProcess(SimConfig(model_name="sim", role="decode", time_scale=0.2, bootstrap_timeout_s=3),
                     port=find_free_ports(2), workers=2).start()
    cfg = {"gateway": {"health": {"interval_s": 0.5}},
           "models": [{"name": "sim", "engine": "external",
                       "prefill": {"urls": pre.urls, "bootstrap_ports": [pre.port, pre.port + 1],
                                   "policy": "least_load"},
                       "decode": {"urls": dec.urls, "policy": "least_load"}}]}
    gp = start_gateway(tmp_path_factory.mktemp("pd"), cfg)
    yield gp, pre, dec
    gp.stop()
    pre.stop()
    dec.stop()


def chat(gp: GatewayProc, i: int, stream: bool = False) -> httpx.Response:
    body = {"model": "sim", "max_tokens": 4, "stream": stream,
            "messages": [{"role": "user", "content": f"question number {i} " * 5}]}
    return HTTP.post(gp.url + "/v1/chat/completions", json=body)


def processed(gp: GatewayProc) -> dict[str, int]:
    return {w["url"]: w["processed"] for w in HTTP.get(gp.url + "/admin/workers").json()["workers"]}


def test_pairs_requests_and_balances_both_sides(pd) -> None:  # type: ignore[no-untyped-def]
    gp, pre, dec = pd
    before = processed(gp)
    for i in range(8):
        r = chat(gp, i)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
    r = chat(gp, 99, stream=True)
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]") and '"error"' not in r.text
    after = processed(gp)
    for url in pre.urls + dec.urls:  # every worker took part: load counted at dispatch on both sides
        assert after[url] - before.get(url, 0) >= 3, (url, after)
    rooms = [HTTP.get(u + "/sim/state").json() for u in pre.urls]
    assert all(rooms)


def test_prefill_failure_cancels_decode_with_clear_error(pd) -> None:  # type: ignore[no-untyped-def]
    gp, pre, dec = pd
    for u in pre.urls:
        HTTP.post(u + "/sim/faults", json={"error_rate": 1.0, "error_codes": [500]})
    try:
        r = chat(gp, 1)
        assert r.status_code == 502
        msg = r.json()["error"]["message"]
        assert "prefill worker" in msg and "500" in msg
        # the paired decode request was cancelled, not left waiting for its room (timeout is 3 s)
        def decode_idle() -> bool:
            states = [HTTP.get(u + "/sim/state").json() for u in dec.urls]
            return all(s["bootstrap_waiting"] == 0 and not s["rids"] for s in states)

        assert wait_for(decode_idle, 2.0)
    finally:
        for u in pre.urls:
            HTTP.post(u + "/sim/faults", json={"reset": True})


def test_decode_failure_aborts_prefill(pd) -> None:  # type: ignore[no-untyped-def]
    gp, pre, dec = pd
    for u in dec.urls:
        HTTP.post(u + "/sim/faults", json={"error_rate": 1.0, "error_codes": [503]})
    try:
        r = chat(gp, 2)
        assert r.status_code == 502 and "503" in r.json()["error"]["message"]
        ws = HTTP.get(gp.url + "/admin/workers").json()["workers"]
        assert all(w["inflight"] == 0 for w in ws), ws
    finally:
        for u in dec.urls:
            HTTP.post(u + "/sim/faults", json={"reset": True})


def test_failing_prefill_cancels_the_waiting_decode(tmp_path: Path) -> None:
    # the prefill worker answers its heartbeat but fails every generation (a dead prefill
    # that refuses connections is stalled by the heartbeat before any request reaches it)
    pre = SimProcess(SimConfig(model_name="sim", role="prefill"), port=find_free_ports(1)).start()
    dec = SimProcess(SimConfig(model_name="sim", role="decode", bootstrap_timeout_s=20),
                     port=find_free_ports(1)).start()
    HTTP.post(pre.urls[0] + "/sim/faults", json={"error_rate": 1.0, "error_codes": [500]})
    cfg = {"gateway": {"health": {"interval_s": 60}, "retry": {"max_attempts": 1}},
           "models": [{"name": "sim", "engine": "external",
                       "prefill": {"urls": pre.urls}, "decode": {"urls": dec.urls}}]}
    gp = start_gateway(tmp_path, cfg, wait=False)
    try:
        assert wait_for(lambda: _ok(gp.url + "/health"), 30)
        t0 = time.monotonic()
        r = chat(gp, 3)
        assert r.status_code == 502 and "prefill worker" in r.json()["error"]["message"]
        assert time.monotonic() - t0 < 5, "the client waited for the decode instead of a prompt error"
        # without the cancel, the decode would wait 20 s for a KV transfer that never comes
        assert wait_for(lambda: HTTP.get(dec.urls[0] + "/sim/state").json()["bootstrap_waiting"] == 0, 3.0)
    finally:
        gp.stop()
        dec.stop()
        pre.stop()


def test_unreachable_prefill_is_refused_at_once(tmp_path: Path) -> None:
    dead = find_free_ports(1)  # nothing listens: the heartbeat stalls it, no decode is ever sent
    dec = SimProcess(SimConfig(model_name="sim", role="decode", bootstrap_timeout_s=20),
                     port=find_free_ports(1)).start()
    cfg = {"gateway": {"health": {"interval_s": 60}},
           "models": [{"name": "sim", "engine": "external",
                       "prefill": {"urls": [f"http://127.0.0.1:{dead}"], "bootstrap_ports": [dead]},
                       "decode": {"urls": dec.urls}}]}
    gp = start_gateway(tmp_path, cfg, wait=False)
    try:
        assert wait_for(lambda: _ok(gp.url + "/health"), 30)
        assert wait_for(lambda: chat(gp, 3).status_code == 503, 10)
        r = chat(gp, 3)
        assert r.status_code == 503 and "prefill" in r.json()["error"]["message"] and r.headers["retry-after"]
        assert HTTP.get(dec.urls[0] + "/sim/state").json()["bootstrap_waiting"] == 0
    finally:
        gp.stop()
        dec.stop()


def _ok(url: str) -> bool:
    try:
        return HTTP.get(url).status_code == 200
    except httpx.HTTPError:
        return False
