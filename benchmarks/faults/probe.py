"""The request core's fault probes, by hand: a real `sglfleet serve` in front of simulated
SGLang workers (one process each), on loopback only. Prints one line per probe.

    python benchmarks/faults/probe.py [--requests 400]

1. one worker of two SIGSTOPped, a request every 0.5 s for 15 s: longest wait, when the worker
   was ejected, when it was re-admitted after SIGCONT;
2. 60% injected 5xx on all 4 workers: the share of requests that fail at the client;
3. credentials in a worker URL: grep /metrics, /admin/*, dashboard data, the log and error
   bodies for them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sglfleet.sim.config import SimConfig  # noqa: E402
from sglfleet.sim.process import SimProcess, find_free_ports  # noqa: E402
from tests.fleetproc import start_gateway, wait_for  # noqa: E402

BODY = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def sims(n: int, **kw: object) -> list[SimProcess]:
    return [SimProcess(SimConfig(model_name="m", ttft_ms=5, itl_ms=2, **kw), port=find_free_ports(1)).start()
            for _ in range(n)]


def answers(url: str) -> bool:
    try:
        return httpx.get(url + "/health").status_code == 200
    except httpx.HTTPError:
        return False


def worker_view(url: str, worker_url: str) -> dict:
    return next(w for w in httpx.get(url + "/admin/workers").json()["workers"] if w["url"] == worker_url)


def sigstop(tmp: Path) -> str:
    ss = sims(2)
    urls = [s.urls[0] for s in ss]
    gp = start_gateway(tmp, {"gateway": {"timeouts": {"first_byte_s": 3}},
                             "models": [{"name": "m", "engine": "external", "urls": urls}]})
    pid = ss[0].proc.pid  # type: ignore[union-attr]
    try:
        os.kill(pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        durations, codes, ejected = [], [], None

        def one(i: int) -> None:
            t0 = time.monotonic()
            r = httpx.post(gp.url + "/v1/chat/completions", json={**BODY, "stream": i % 2 == 0}, timeout=120)
            durations.append(time.monotonic() - t0)
            codes.append(r.status_code)

        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            fs = []
            for i in range(30):
                fs.append(ex.submit(one, i))
                if ejected is None and worker_view(gp.url, urls[0])["stalled"]:
                    ejected = time.monotonic() - t_stop
                time.sleep(0.5)
            for f in fs:
                f.result()
        os.kill(pid, signal.SIGCONT)
        t_cont = time.monotonic()
        wait_for(lambda: worker_view(gp.url, urls[0])["eligible"], 30)
        readmitted = time.monotonic() - t_cont
        return (f"sigstop: {codes.count(200)}/{len(codes)} ok, longest wait {max(durations):.2f} s "
                f"(median {statistics.median(durations) * 1000:.0f} ms), ejected after {ejected:.1f} s, "
                f"re-admitted {readmitted:.1f} s after SIGCONT")
    finally:
        os.kill(pid, signal.SIGCONT)
        gp.stop()
        for s in ss:
            s.stop()


def injected_5xx(tmp: Path, n: int) -> str:
    ss = sims(4)
    for s in ss:
        httpx.post(s.urls[0] + "/sim/faults", json={"error_rate": 0.6, "error_codes": [500, 502, 503]})
    gp = start_gateway(tmp, {"gateway": {"retry": {"initial_backoff_s": 0.01}},
                             "models": [{"name": "m", "engine": "external", "urls": [s.urls[0] for s in ss],
                                         "policy": "round_robin"}]}, wait=False)
    try:
        wait_for(lambda: answers(gp.url), 30)
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            codes = list(ex.map(lambda _: httpx.post(gp.url + "/v1/chat/completions", json=BODY,
                                                     timeout=60).status_code, range(n)))
        failed = sum(c != 200 for c in codes)
        return f"60% injected 5xx on 4 workers: {failed}/{n} failed at the client ({100 * failed / n:.1f}%)"
    finally:
        gp.stop()
        for s in ss:
            s.stop()


def credentials(tmp: Path) -> str:
    user, password = "probeuser", "pr0be-pa55word"
    (s,) = sims(1)
    url = s.urls[0].replace("http://", f"http://{user}:{password}@")
    gp = start_gateway(tmp, {"gateway": {"admin_keys": ["adm"]},
                             "models": [{"name": "m", "engine": "external", "urls": [url]}]})
    adm = {"authorization": "Bearer adm"}
    try:
        shown = [httpx.post(gp.url + "/v1/chat/completions", json=BODY).text]
        httpx.post(s.urls[0] + "/sim/faults", json={"error_rate": 1.0, "error_codes": [500]})
        shown.append(httpx.post(gp.url + "/v1/chat/completions", json=BODY).text)
        shown.append(httpx.post(gp.url + "/v1/chat/completions", json={**BODY, "stream": True}).text)
        s.stop()  # now the worker is gone: connect errors
        shown.append(httpx.post(gp.url + "/v1/chat/completions", json=BODY).text)
        for path in ("/metrics", "/admin/workers", "/admin/models", "/admin/crashes", "/dashboard/api/stats"):
            shown.append(httpx.get(gp.url + path, headers=adm).text)
        gp.stop()
        shown.append(gp.log())
        leaks = sum(password in t or user in t for t in shown)
        return f"credentials: found in {leaks} of {len(shown)} places checked (responses, metrics, admin, dashboard, log)"
    finally:
        gp.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(sigstop(tmp / "stop"), flush=True)
        print(injected_5xx(tmp / "5xx", a.requests), flush=True)
        print(credentials(tmp / "creds"), flush=True)


if __name__ == "__main__":
    main()
