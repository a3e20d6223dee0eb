"""Two real llama.cpp replicas behind the gateway: kill one mid-stream, auth, admin, metrics."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
from collections.abc import Iterator

import httpx
import openai
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fleetproc import GatewayProc, start_gateway, wait_for

KEY, ADMIN = "test-key-123", "admin-key-456"
AUTH, ADMIN_AUTH = {"authorization": f"Bearer {KEY}"}, {"authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    cfg = {
        "gateway": {"api_keys": ["${T_KEY}"], "admin_keys": ["${T_ADMIN}"],
                    "retry": {"initial_backoff_s": 0.01}},
        "models": [{"name": "smollm2-135m", "replicas": 2, "n_threads": 1, "policy": "least_load",
                    "restart": {"backoff_initial_s": 0.5, "min_uptime_s": 1}}],
    }
    gp = start_gateway(tmp_path_factory.mktemp("pair"), cfg, env={"T_KEY": KEY, "T_ADMIN": ADMIN})
    assert wait_for(lambda: len(ready_workers(gp)) == 2, 60)
    yield gp
    gp.stop()


def ready_workers(gp: GatewayProc) -> list[dict]:
    ws = httpx.get(gp.url + "/admin/workers", headers=ADMIN_AUTH).json()["workers"]
    return [w for w in ws if w["eligible"]]


def engine_pid_of(gp: GatewayProc, worker_id: str) -> int:
    models = httpx.get(gp.url + "/admin/models", headers=ADMIN_AUTH).json()["models"]
    (rep,) = [r for r in models[0]["replicas"] if r["worker"] == worker_id]
    guard = psutil.Process(rep["pid"])
    (engine,) = guard.children()
    return engine.pid


def stream_events(url: str, content: str, max_tokens: int, started: threading.Event | None = None) -> list[str]:
    body = {"model": "smollm2-135m", "stream": True, "max_tokens": max_tokens, "temperature": 1.0,
            "messages": [{"role": "user", "content": content}]}
    events = []
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=AUTH, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line)
                if started is not None and '"content":' in line:
                    started.set()
    return events


def test_auth_is_required_on_v1_but_not_on_health(pair: GatewayProc) -> None:
    assert httpx.get(pair.url + "/v1/models").status_code == 401
    assert httpx.get(pair.url + "/v1/models", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(pair.url + "/v1/models", headers=AUTH).status_code == 200
    assert httpx.get(pair.url + "/health").status_code == 200
    assert httpx.get(pair.url + "/ready").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=pair.url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_admin_needs_admin_key(pair: GatewayProc) -> None:
    assert httpx.get(pair.url + "/admin/workers").status_code == 401
    r = httpx.get(pair.url + "/admin/workers", headers=AUTH)
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    ws = httpx.get(pair.url + "/admin/workers", headers=ADMIN_AUTH).json()["workers"]
    assert len(ws) == 2 and {w["model"] for w in ws} == {"smollm2-135m"}
    assert KEY not in pair.log() and ADMIN not in pair.log()


def test_kill_one_worker_mid_stream(pair: GatewayProc) -> None:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        began = threading.Event(), threading.Event()
        a = pool.submit(stream_events, pair.url, "Tell a long story about the sea.", 400, began[0])
        b = pool.submit(stream_events, pair.url, "Describe a very large city at night.", 400, began[1])
        # both streams must have sent the client bytes: before that, a dead worker's request is
        # retried on the other one and nobody sees an error (tests/gateway/test_retries.py)
        assert all(e.wait(30) for e in began)
        assert wait_for(lambda: sum(w["inflight"] for w in ready_workers(pair)) == 2, 10)
        victim = ready_workers(pair)[0]
        assert victim["inflight"] == 1  # least_load spread the two streams
        os.kill(engine_pid_of(pair, victim["id"]), signal.SIGKILL)
        results = [a.result(timeout=60), b.result(timeout=60)]
    # the stream on the killed worker is not lost: it continues on the other replica
    # (mid-stream migration, docs/reliability.md); neither ends with an error event
    broken = [r for r in results if any('"error"' in e for e in r)]
    assert broken == [] and all(r[-1] == "data: [DONE]" for r in results)
    assert all(any('"finish_reason":"' in e or '"finish_reason": "' in e for e in r) for r in results)
    assert 'sglfleet_migrations_total{model="smollm2-135m",outcome="migrated"} 1.0' in httpx.get(
        pair.url + "/metrics").text
    # new requests keep working while the killed replica restarts
    c = openai.OpenAI(base_url=pair.url + "/v1", api_key=KEY, max_retries=0, timeout=30)
    for _ in range(3):
        assert c.chat.completions.create(model="smollm2-135m", max_tokens=2,
                                         messages=[{"role": "user", "content": "hi"}]).choices
    assert wait_for(lambda: len(ready_workers(pair)) == 2, 30), "killed replica restarted"
    models = httpx.get(pair.url + "/admin/models", headers=ADMIN_AUTH).json()["models"]
    assert models[0]["restarts"] >= 1 and "signal 9" in (models[0]["replicas"][0]["last_crash"] or "") + (
        models[0]["replicas"][1]["last_crash"] or "")


def test_metrics_parse_and_cover_the_fleet(pair: GatewayProc) -> None:
    c = openai.OpenAI(base_url=pair.url + "/v1", api_key=KEY, max_retries=0)
    c.chat.completions.create(model="smollm2-135m", max_tokens=2, messages=[{"role": "user", "content": "hi"}])
    text = httpx.get(pair.url + "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("sglfleet_requests", "sglfleet_request_duration_seconds", "sglfleet_time_to_first_token_seconds",
                 "sglfleet_tokens", "sglfleet_worker_inflight", "sglfleet_worker_healthy",
                 "sglfleet_worker_breaker_state", "sglfleet_queue_depth", "sglfleet_prefix_tree_chars",
                 "sglfleet_retries", "sglfleet_upstream_errors"):
        assert name in families, name
    ok = [s for s in families["sglfleet_requests"].samples
          if s.name == "sglfleet_requests_total" and s.labels["status"] == "200"]
    assert ok and sum(s.value for s in ok) >= 1
    assert len(families["sglfleet_worker_inflight"].samples) == 2
    assert KEY not in text and ADMIN not in text
