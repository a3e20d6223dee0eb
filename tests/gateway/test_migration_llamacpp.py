"""Mid-stream migration on two real llama.cpp replicas: a greedy 200-token stream whose engine
is killed with SIGKILL after about 50 tokens completes on the other replica (the gateway
renders the GGUF's chat template and continues on /v1/completions), with no error event, a
finish_reason and [DONE]. The text is compared with the uninterrupted answer."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.fleetproc import start_gateway, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.slow]
ADMIN = {"authorization": "Bearer adm"}
BODY = {"model": "smol", "messages": [{"role": "user", "content": "Write a long story about a dragon and a knight."}],
        "max_tokens": 200, "temperature": 0, "stream": True}


def stream(url: str, kill_after: int | None = None) -> tuple[str, list[dict], list[str], float | None]:
    text, chunks, lines, killed_at = [], [], [], None
    t0 = time.monotonic()
    with httpx.stream("POST", url + "/v1/chat/completions", json=BODY, timeout=120) as r:
        assert r.status_code == 200
        worker = r.headers["x-sglfleet-worker"]
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            lines.append(line)
            if line == "data: [DONE]":
                continue
            c = orjson.loads(line[6:])
            chunks.append(c)
            piece = (c.get("choices") or [{}])[0].get("delta", {}).get("content")
            if piece:
                text.append(piece)
            if kill_after is not None and killed_at is None and len(text) >= kill_after:
                models = httpx.get(url + "/admin/models", headers=ADMIN, timeout=10).json()["models"]
                pid = next(rep["pid"] for rep in models[0]["replicas"] if rep["worker"] == worker)
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic() - t0
    return "".join(text), chunks, lines, killed_at


def test_killed_llamacpp_engine_stream_continues_on_the_other_replica(tmp_path: Path) -> None:
    cfg = {"gateway": {"admin_keys": ["adm"], "memory": {"psi_full_avg10_max": None}},
           "models": [{"name": "smol", "replicas": 2, "n_threads": 1, "n_ctx": 1024, "policy": "round_robin",
                       "restart": {"backoff_initial_s": 5}}]}
    gp = start_gateway(tmp_path, cfg, timeout=120)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both replicas ready
            reps = httpx.get(gp.url + "/admin/models", headers=ADMIN, timeout=10).json()["models"][0]["replicas"]
            if all(rep["state"] == "READY" for rep in reps):
                break
            time.sleep(0.2)
        whole, _, _, _ = stream(gp.url)
        assert len(whole) > 200
        text, chunks, lines, killed_at = stream(gp.url, kill_after=50)
        assert killed_at is not None
        assert lines[-1] == "data: [DONE]"
        assert not any("error" in c for c in chunks)
        assert [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")
                and c["choices"][0].get("finish_reason")] in (["length"], ["stop"])
        assert {c["id"] for c in chunks} == {chunks[0]["id"]}
        pairs = enumerate(zip(text, whole, strict=False))
        same = next((i for i, (a, b) in pairs if a != b), min(len(text), len(whole)))
        print(f"\nllama.cpp migration: killed after {killed_at:.2f}s; answer {len(text)} chars vs {len(whole)} "
              f"uninterrupted; identical: {text == whole}; common prefix {same} chars "
              f"({same / max(1, len(whole)):.0%} of the uninterrupted answer)\n  uninterrupted: "
              f"{whole[max(0, same - 60):same + 60]!r}\n  migrated:      {text[max(0, same - 60):same + 60]!r}")
        assert 'outcome="migrated"} 1.0' in httpx.get(gp.url + "/metrics", timeout=10).text
        assert wait_for(lambda: "workers=" in gp.log(), 5), gp.log()[-2000:]  # the access log names both workers
    finally:
        gp.stop()
