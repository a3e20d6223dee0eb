"""Retries, breakers, timeouts and backpressure against simulated SGLang workers (real HTTP)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sglfleet.sim import SimConfig, SimProcess, find_free_ports
from tests.fleetproc import GatewayProc, start_gateway, wait_for

HTTP = httpx.Client(timeout=60)
BODY = {"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
def sims() -> Iterator[SimProcess]:
    sp = SimProcess(SimConfig(model_name="m", ttft_ms=5, itl_ms=2), port=find_free_ports(3), workers=3).start()
    yield sp
    sp.stop()


def fault(url: str, **kw: object) -> None:
    assert HTTP.post(url + "/sim/faults", json=kw).status_code == 200


def gateway(tmp: Path, urls: list[str], wait: bool = True, **model: object) -> GatewayProc:
    cfg = {"gateway": {"retry": {"max_attempts": 3, "initial_backoff_s": 0.01},
                       "breaker": {"failure_threshold": 2, "open_s": 60},
                       "health": {"interval_s": 0.3, "failure_threshold": 1, "success_threshold": 1},
                       "timeouts": {"first_byte_s": 1.0, "total_s": 2.0}},
           "models": [{"name": "m", "engine": "external", "urls": urls, **model}]}
    gp = start_gateway(tmp, cfg, wait=wait)
    if not wait:
        assert wait_for(lambda: _answers(gp), 60)
    return gp


def _answers(gp: GatewayProc) -> bool:
    try:
        return HTTP.get(gp.url + "/health").status_code == 200
    except httpx.HTTPError:
        return False


def metric(gp: GatewayProc, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in HTTP.get(gp.url + "/metrics").text.splitlines()
               if line.startswith(prefix))


def test_5xx_is_retried_on_another_worker_and_breaker_opens(tmp_path: Path, sims: SimProcess) -> None:
    bad = sims.urls[0]
    gp = gateway(tmp_path, sims.urls[:2], policy="round_robin")
    try:
        fault(bad, error_rate=1.0, error_codes=[503])
        for _ in range(8):
            r = HTTP.post(gp.url + "/v1/chat/completions", json=BODY)
            assert r.status_code == 200, r.text
        assert metric(gp, "sglfleet_retries_total") >= 2
        workers = {w["url"]: w for w in HTTP.get(gp.url + "/admin/workers").json()["workers"]}
        assert workers[bad]["breaker"] == "open" and "503" in workers[bad]["last_error"]
        assert workers[sims.urls[1]]["breaker"] == "closed"
    finally:
        gp.stop()


def test_streams_are_retried_before_the_first_byte(tmp_path: Path, sims: SimProcess) -> None:
    gp = gateway(tmp_path, sims.urls[:2], policy="round_robin")
    try:
        fault(sims.urls[0], error_rate=1.0, error_codes=[500])
        for _ in range(4):
            with HTTP.stream("POST", gp.url + "/v1/chat/completions", json={**BODY, "stream": True}) as r:
                lines = [x for x in r.iter_lines() if x]
            assert r.status_code == 200 and lines[-1] == "data: [DONE]"
            assert not any('"error"' in x for x in lines)
    finally:
        gp.stop()


def test_hung_worker_times_out_and_request_moves_on(tmp_path: Path, sims: SimProcess) -> None:
    gp = gateway(tmp_path, sims.urls[:2], policy="round_robin")
    try:
        fault(sims.urls[0], hang=True)
        for _ in range(3):
            assert HTTP.post(gp.url + "/v1/chat/completions", json=BODY).status_code == 200
    finally:
        gp.stop()


def test_only_worker_hangs_gives_504(tmp_path: Path, sims: SimProcess) -> None:
    gp = gateway(tmp_path, sims.urls[:1])
    try:
        fault(sims.urls[0], hang=True)
        r = HTTP.post(gp.url + "/v1/chat/completions", json=BODY)
        assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    finally:
        gp.stop()


def test_engine_4xx_passes_through_without_retry(tmp_path: Path, sims: SimProcess) -> None:
    gp = gateway(tmp_path, sims.urls[:2])
    try:
        fault(sims.urls[0], error_rate=1.0, error_codes=[400])
        fault(sims.urls[1], error_rate=1.0, error_codes=[400])
        r = HTTP.post(gp.url + "/v1/chat/completions", json=BODY)
        assert r.status_code == 400 and r.json()["error"]["code"] == "upstream_400"
        assert metric(gp, "sglfleet_retries_total") == 0
    finally:
        gp.stop()


def test_dead_worker_becomes_unhealthy_then_503_with_retry_after(tmp_path: Path) -> None:
    (port,) = [find_free_ports(1)]
    gp = gateway(tmp_path, [f"http://127.0.0.1:{port}"], wait=False)  # nothing listens there
    try:
        assert wait_for(lambda: not HTTP.get(gp.url + "/admin/workers").json()["workers"][0]["healthy"], 10)
        r = HTTP.post(gp.url + "/v1/chat/completions", json=BODY)
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.json()["error"]["code"] == "no_worker_available"
        assert HTTP.get(gp.url + "/ready").status_code == 503
    finally:
        gp.stop()


def test_queue_full_gives_429_with_retry_after(tmp_path: Path) -> None:
    sp = SimProcess(SimConfig(model_name="m", ttft_ms=300, itl_ms=50), port=find_free_ports(1)).start()
    gp = gateway(tmp_path, sp.urls, max_concurrency=1, max_queue=1)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            rs = list(ex.map(lambda _: HTTP.post(gp.url + "/v1/chat/completions", json=BODY), range(4)))
        codes = sorted(r.status_code for r in rs)
        assert codes.count(200) >= 2 and 429 in codes
        r429 = next(r for r in rs if r.status_code == 429)
        assert r429.headers["retry-after"] and r429.json()["error"]["type"] == "rate_limit_error"
    finally:
        gp.stop()
        sp.stop()


def test_runtime_worker_registration(tmp_path: Path, sims: SimProcess) -> None:
    gp = gateway(tmp_path, sims.urls[:1])
    try:
        r = HTTP.post(gp.url + "/admin/workers", json={"model": "m", "url": sims.urls[2]})
        assert r.status_code == 201
        wid = r.json()["id"]
        assert len(HTTP.get(gp.url + "/admin/workers").json()["workers"]) == 2
        assert HTTP.post(gp.url + "/admin/workers", json={"model": "nope", "url": sims.urls[2]}).status_code == 404
        assert HTTP.post(gp.url + "/admin/workers", json={"model": "m", "url": "ftp://x"}).status_code == 400
        assert HTTP.delete(gp.url + f"/admin/workers/{wid}").status_code == 200
        assert HTTP.delete(gp.url + f"/admin/workers/{wid}").status_code == 404
        assert len(HTTP.get(gp.url + "/admin/workers").json()["workers"]) == 1
    finally:
        gp.stop()
