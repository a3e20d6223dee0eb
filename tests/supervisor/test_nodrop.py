"""Never drop a request, end to end with real processes (managed SGLang = the simulator behind
the stand-in `sglang` package): cold-start holds with SSE comments, a rolling restart under
steady traffic, and SGLang warm sleep chosen by the memory orchestrator."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleetproc import GatewayProc, start_gateway

FAKE = str(Path(__file__).resolve().parents[1] / "engines" / "fake_sglang")
ADMIN = {"authorization": "Bearer adm"}
pytestmark = pytest.mark.slow


def sglang_model(name: str, sim_args: str = "", **over: Any) -> dict[str, Any]:
    path = os.pathsep.join(p for p in (FAKE, os.environ.get("PYTHONPATH", "")) if p)
    m: dict[str, Any] = {
        "name": name, "engine": "sglang", "queue_timeout_s": 30,
        "sglang": {"model_path": f"org/{name}", "env": {"PYTHONPATH": path, "FAKE_SGLANG_SIM_ARGS": sim_args}},
        "restart": {"stop_grace_s": 2, "startup_timeout_s": 30, "liveness_interval_s": 1, "min_uptime_s": 1},
    }
    m.update(over)
    return m


def state(gp: GatewayProc, name: str) -> dict[str, Any]:
    models = httpx.get(gp.url + "/admin/models", headers=ADMIN, timeout=10).json()["models"]
    return next(m for m in models if m["name"] == name)


def wait_state(gp: GatewayProc, name: str, want: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = state(gp, name)
        if m["state"] == want:
            return m
        time.sleep(0.1)
    raise AssertionError(f"{name} not {want}: {m['state']}\n{gp.log()[-2000:]}")


def chat(model: str, stream: bool, max_tokens: int = 8) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens,
            "stream": stream}


def test_hold_streams_comments_then_the_answer_and_503_past_the_bound(tmp_path: Path) -> None:
    cfg = {"gateway": {"admin_keys": ["adm"], "memory": {"psi_full_avg10_max": None}},
           "models": [sglang_model("m", "--slow-start-s 3"),
                      sglang_model("n", "--slow-start-s 4", hold={"max_s": 1})]}
    gp = start_gateway(tmp_path, cfg, timeout=60)
    try:
        wait_state(gp, "m", "READY")
        wait_state(gp, "n", "READY")  # first loads: their times are learned
        for name in ("m", "n"):
            assert httpx.post(f"{gp.url}/admin/models/{name}/unload", headers=ADMIN, timeout=30).status_code == 200
        plain: dict[str, Any] = {}
        t = threading.Thread(target=lambda: plain.update(r=httpx.post(gp.url + "/v1/chat/completions",
                                                                      json=chat("m", False), timeout=60)))
        t0 = time.monotonic()
        lines: list[tuple[float, str]] = []
        with httpx.stream("POST", gp.url + "/v1/chat/completions", json=chat("m", True), timeout=60) as r:
            assert r.status_code == 200
            t.start()  # a non-streaming client arrives while the load runs
            for line in r.iter_lines():
                if line:
                    lines.append((time.monotonic() - t0, line))
        t.join()
        comments = [(at, x) for at, x in lines if x.startswith(": sglfleet: loading m ")]
        assert comments and comments[0][0] < 2.0, lines[:3]  # the first comment at once, then every 2 s
        gaps = [b[0] - a[0] for a, b in zip(comments, comments[1:], strict=False)]
        assert all(g < 2.5 for g in gaps), gaps
        assert "% eta " in comments[0][1] and comments[0][1].endswith("s")
        data = [x for _, x in lines if x.startswith("data: ")]
        assert data[-1] == "data: [DONE]" and any('"content":"sim-' in x for x in data)
        assert not any('"error"' in x for x in data)
        assert plain["r"].status_code == 200 and plain["r"].json()["choices"][0]["message"]["content"]
        print(f"\nhold: first comment after {comments[0][0]:.2f}s, {len(comments)} comments, answer after "
              f"{lines[-1][0]:.2f}s; comment: {comments[0][1]!r}")
        # n: the learned load time (~4 s + spawn) is past its bound (1 s): 503 at once, Retry-After from it
        r = httpx.post(gp.url + "/v1/chat/completions", json=chat("n", True), timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_loading"
        assert int(r.headers["retry-after"]) >= 3
        m = httpx.get(gp.url + "/metrics", timeout=10).text
        assert 'sglfleet_holds_total{model="m",outcome="served"} 2.0' in m
        assert 'sglfleet_holds_total{model="n",outcome="timeout"}' in m
    finally:
        gp.stop()


class Traffic(threading.Thread):
    """`rate` streamed requests per second until stopped; records every failure."""

    def __init__(self, url: str, model: str, rate: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.url, self.model, self.period = url, model, 1.0 / rate
        self.ok, self.failures = 0, []
        self.halt = threading.Event()
        self.threads: list[threading.Thread] = []

    def one(self) -> None:
        try:
            with httpx.stream("POST", self.url + "/v1/chat/completions", json=chat(self.model, True, 32),
                              timeout=60) as r:
                body = "".join(r.iter_text())
            if r.status_code != 200 or '"error"' in body or not body.rstrip().endswith("data: [DONE]"):
                self.failures.append(f"{r.status_code} {body[-300:]}")
            else:
                self.ok += 1
        except httpx.HTTPError as exc:
            self.failures.append(repr(exc))

    def run(self) -> None:
        while not self.halt.is_set():
            t = threading.Thread(target=self.one, daemon=True)
            t.start()
            self.threads.append(t)
            time.sleep(self.period)

    def finish(self) -> None:
        self.halt.set()
        self.join()
        for t in self.threads:
            t.join(60)


def test_rolling_restart_under_5_rps_fails_no_request(tmp_path: Path) -> None:
    cfg = {"gateway": {"admin_keys": ["adm"], "memory": {"psi_full_avg10_max": None}},
           "models": [sglang_model("two", "--itl-ms 20", replicas=2), sglang_model("one", "--itl-ms 20")]}
    gp = start_gateway(tmp_path, cfg, timeout=60)
    try:
        for name in ("two", "one"):
            wait_state(gp, name, "READY")
            before = [r["pid"] for r in state(gp, name)["replicas"]]
            traffic = Traffic(gp.url, name)
            traffic.start()
            time.sleep(1.0)
            t0 = time.monotonic()
            out = subprocess.run([sys.executable, "-m", "sglfleet.cli", "restart", name, "--url", gp.url,
                                  "--admin-key", "adm"], capture_output=True, text=True, timeout=120)
            took = time.monotonic() - t0
            time.sleep(1.0)
            traffic.finish()
            assert out.returncode == 0, out.stderr
            after = [r["pid"] for r in state(gp, name)["replicas"]]
            assert not set(before) & set(after)  # every replica is a new process
            print(f"\nrolling restart of {name!r} ({len(before)} replica(s)) in {took:.1f}s under 5 req/s: "
                  f"{traffic.ok} ok, {len(traffic.failures)} failed\n{out.stdout}")
            assert traffic.ok >= 10 and traffic.failures == [], traffic.failures[:2]
    finally:
        gp.stop()


def test_warm_sleep_instead_of_eviction_and_wake_on_request(tmp_path: Path) -> None:
    sim = "--slow-start-s 3 --memory-mb 96 --resume-ms 300"
    mb = 1_000_000
    cfg = {"gateway": {"admin_keys": ["adm"], "memory": {"device": "ram", "budget_bytes": 700 * mb,
                                                         "psi_full_avg10_max": None}},
           "models": [sglang_model("a", sim, memory_bytes=600 * mb, evict="sleep"),
                      sglang_model("b", sim, memory_bytes=600 * mb)]}
    gp = start_gateway(tmp_path, cfg, timeout=60)
    try:
        a = wait_state(gp, "a", "READY")
        assert "--enable-memory-saver" in Path(a["replicas"][0]["log"]).read_text()
        assert state(gp, "b")["state"] == "STOPPED"  # does not fit next to a's estimate: loads on demand
        pid_a = a["replicas"][0]["pid"]
        time.sleep(2.5)  # a measured while loaded
        t0 = time.monotonic()
        r = httpx.post(gp.url + "/v1/chat/completions", json=chat("b", False), timeout=60)
        cold = time.monotonic() - t0
        assert r.status_code == 200
        a = state(gp, "a")
        assert a["state"] == "SLEEPING" and a["replicas"][0]["pid"] == pid_a  # the process lives on
        held = a["memory"]["holding_bytes"]
        assert held < 600 * mb  # the accounting follows the release (measured after it)
        t0 = time.monotonic()
        r = httpx.post(gp.url + "/v1/chat/completions", json=chat("a", False), timeout=60)
        warm = time.monotonic() - t0
        assert r.status_code == 200
        a = state(gp, "a")
        assert a["state"] == "READY" and a["replicas"][0]["pid"] == pid_a
        print(f"\nwarm sleep: first request to b (cold start, evicting a to sleep) {cold:.2f}s; to a (wake) "
              f"{warm:.2f}s; a kept {held / mb:.0f} MB while asleep")
        assert warm < cold
    finally:
        gp.stop()
