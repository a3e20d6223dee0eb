"""The request core's fault cases against real processes: a real `sglfleet serve` in front of
simulated SGLang workers, each in its own process so one can be SIGSTOPped (hung) or the
gateway SIGTERMed with streams in flight."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sglfleet.sim.config import SimConfig
from sglfleet.sim.process import SimProcess, find_free_ports
from tests.fleetproc import start_gateway, wait_for

BODY = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
FIRST_BYTE_S = 3.0


@pytest.fixture
def two_sims() -> Iterator[list[SimProcess]]:
    sims = [SimProcess(SimConfig(model_name="m", ttft_ms=5, itl_ms=2), port=find_free_ports(1)).start()
            for _ in range(2)]
    yield sims
    for s in sims:
        if s.proc is not None:
            os.kill(s.proc.pid, signal.SIGCONT)
        s.stop()


def workers(url: str) -> dict[str, dict]:
    return {w["url"]: w for w in httpx.get(url + "/admin/workers", timeout=10).json()["workers"]}


@pytest.mark.slow
def test_one_worker_of_two_sigstopped(tmp_path: Path, two_sims: list[SimProcess]) -> None:
    urls = [s.urls[0] for s in two_sims]
    gp = start_gateway(tmp_path, {
        "gateway": {"timeouts": {"first_byte_s": FIRST_BYTE_S, "total_s": 60}},
        "models": [{"name": "m", "engine": "external", "urls": urls, "policy": "cache_aware"}]})
    hung = two_sims[0]
    assert hung.proc is not None
    try:
        os.kill(hung.proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        durations: list[float] = []
        codes: list[int] = []
        ejected_after: float | None = None

        def one(stream: bool) -> None:
            t0 = time.monotonic()
            with httpx.Client(timeout=60) as c:
                r = c.post(gp.url + "/v1/chat/completions", json={**BODY, "stream": stream})
            durations.append(time.monotonic() - t0)
            codes.append(r.status_code)

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            futures = []
            for i in range(24):  # a request every 0.5 s for 12 s, streamed and not
                futures.append(ex.submit(one, i % 2 == 0))
                if ejected_after is None and workers(gp.url)[urls[0]]["stalled"]:
                    ejected_after = time.monotonic() - stopped_at
                time.sleep(0.5)
            for f in futures:
                f.result()
        assert codes == [200] * len(codes), codes
        # nobody waits longer than the first-byte deadline plus one retry
        assert max(durations) < FIRST_BYTE_S + 5, sorted(durations)[-3:]
        assert ejected_after is not None and ejected_after < 10
        os.kill(hung.proc.pid, signal.SIGCONT)
        assert wait_for(lambda: workers(gp.url)[urls[0]]["eligible"], 15)  # re-admitted
    finally:
        os.kill(hung.proc.pid, signal.SIGCONT)
        gp.stop()


@pytest.mark.slow
def test_sigterm_with_long_streams_in_flight(tmp_path: Path) -> None:
    sim = SimProcess(SimConfig(model_name="m", ttft_ms=5, itl_ms=100), port=find_free_ports(1)).start()
    gp = start_gateway(tmp_path, {"gateway": {"shutdown_grace_s": 2},
                                  "models": [{"name": "m", "engine": "external", "urls": sim.urls}]})
    try:
        started = threading.Barrier(5)
        results: list[list[str]] = []

        def stream(max_tokens: int) -> None:
            body = {**BODY, "stream": True, "max_tokens": max_tokens, "ignore_eos": True}
            with httpx.stream("POST", gp.url + "/v1/chat/completions", json=body, timeout=60) as r:
                lines = r.iter_lines()
                got = [next(lines)]
                started.wait(10)
                got += [x for x in lines if x]
                results.append([x for x in got if x.startswith("data: ")])

        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            # two short streams finish within the grace; two 60 s streams are cut after it
            futures = [ex.submit(stream, n) for n in (10, 10, 600, 600)]
            started.wait(10)
            gp.proc.send_signal(signal.SIGTERM)
            for f in futures:
                f.result()
        assert all(r[-1] == "data: [DONE]" for r in results), [r[-2:] for r in results]
        cut = [r for r in results if any('"error"' in e for e in r)]
        assert len(cut) == 2 and all("shutting down" in r[-2] for r in cut)
        assert gp.proc.wait(30) == 0
        assert "Traceback" not in gp.log()
    finally:
        gp.stop()
        sim.stop()


def test_ready_is_503_while_draining(tmp_path: Path) -> None:
    sim = SimProcess(SimConfig(model_name="m", ttft_ms=5, itl_ms=100), port=find_free_ports(1)).start()
    gp = start_gateway(tmp_path, {"gateway": {"shutdown_grace_s": 5},
                                  "models": [{"name": "m", "engine": "external", "urls": sim.urls}]})
    try:
        body = {**BODY, "stream": True, "max_tokens": 200, "ignore_eos": True}
        with httpx.stream("POST", gp.url + "/v1/chat/completions", json=body, timeout=60) as r:
            lines = r.iter_lines()  # (kept: a dropped iterator closes the stream)
            next(lines)
            gp.proc.send_signal(signal.SIGTERM)
            assert wait_for(lambda: httpx.get(gp.url + "/ready").status_code == 503, 5)
            refused = httpx.post(gp.url + "/v1/chat/completions", json=BODY)
            assert refused.status_code == 503 and refused.headers["retry-after"]
    finally:
        gp.stop()
        sim.stop()
