"""Two `sglfleet serve` processes with policy kv_events on the same simulated workers agree,
because both read the workers' KV events; no shared store. Also: the prediction-error metric."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from sglfleet.sim import SimConfig, SimProcess, find_free_ports
from tests.fleetproc import start_gateway

pytestmark = pytest.mark.slow

SHARED = " ".join(f"tenant{i}" for i in range(60))


def _worker_urls(metrics: str) -> dict[str, str]:
    """worker id -> url, from the gateway's sglfleet_worker_processed labels."""
    out = {}
    for labels in re.findall(r"^sglfleet_worker_processed\{([^}]*)\}", metrics, re.M):
        worker, url = re.search(r'worker="([^"]+)"', labels), re.search(r'url="([^"]+)"', labels)
        assert worker and url
        out[worker.group(1)] = url.group(1)
    return out


def _blocks(metrics: str, worker: str) -> float:
    m = re.search(rf'^sglfleet_kv_events_worker_blocks\{{[^}}]*worker="{worker}"[^}}]*\}} ([\d.e+-]+)$', metrics, re.M)
    return float(m.group(1)) if m else 0.0


def _wait_blocks(url: str, worker: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _blocks(httpx.get(url + "/metrics").text, worker) > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"gateway {url} never saw blocks on {worker}")


def _chat(url: str, content: str) -> tuple[str, int]:
    r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
        "model": "sim", "messages": [{"role": "user", "content": content}], "max_tokens": 2})
    assert r.status_code == 200, r.text
    return r.headers["x-sglfleet-worker"], r.json()["usage"]["prompt_tokens_details"]["cached_tokens"]


def test_two_gateways_make_the_same_choice_from_the_same_events(tmp_path: Path) -> None:
    n = 4
    base = find_free_ports(2 * n)
    kv = json.dumps({"publisher": "zmq", "endpoint": f"tcp://127.0.0.1:{base}",
                     "replay_endpoint": f"tcp://127.0.0.1:{base + n}"})
    with SimProcess(SimConfig(page_size=4, time_scale=0.0, kv_events_config=kv), port=find_free_ports(n),
                    workers=n) as sim:
        cfg = {"gateway": {"host": "127.0.0.1"},
               "models": [{"name": "sim", "engine": "external", "urls": list(sim.urls), "policy": "kv_events",
                           "kv_events": {"tokenizer": "sim"}}]}
        g1 = start_gateway(tmp_path / "g1", cfg, timeout=60)
        g2 = start_gateway(tmp_path / "g2", cfg, timeout=60)
        try:
            for group in range(3):  # each group: first seen by g1, then asked of g2 (which never saw it)
                prefix = f"group{group} " + SHARED
                w1, _ = _chat(g1.url, prefix + " first question")
                url1 = _worker_urls(httpx.get(g1.url + "/metrics").text)[w1]
                ids2 = {u: w for w, u in _worker_urls(httpx.get(g2.url + "/metrics").text).items()}
                _wait_blocks(g2.url, ids2[url1])
                w2, cached = _chat(g2.url, prefix + " second question")
                assert ids2[url1] == w2, f"group {group}: g1 chose {url1}, g2 chose another worker"
                assert cached >= 60
            metrics = httpx.get(g2.url + "/metrics").text
            count = re.search(r'^sglfleet_cache_prediction_error_tokens_count\{model="sim",policy="kv_events"\} '
                              r'([\d.e+-]+)$', metrics, re.M)
            total = re.search(r'^sglfleet_cache_prediction_error_tokens_sum\{model="sim",policy="kv_events"\} '
                              r'([\d.e+-]+)$', metrics, re.M)
            assert count and float(count.group(1)) == 3
            assert total and float(total.group(1)) == 0  # g2 predicted exactly what the engines reported
        finally:
            g1.stop()
            g2.stop()
