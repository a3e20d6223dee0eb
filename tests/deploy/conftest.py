"""Fixtures for the deploy tests: small fleet files and tool lookups that skip with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from sglfleet.config import FleetConfig
from sglfleet.deploy.plan import load_fleet


def fleet_from(tmp_path: Path, data: dict[str, Any], name: str = "fleet.yaml") -> FleetConfig:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return load_fleet(path)


AGGREGATED: dict[str, Any] = {
    "gateway": {"port": 8000, "api_keys": ["${SGLFLEET_API_KEY}"]},
    "models": [
        {"name": "deepseek-r1-distill-llama-8b", "engine": "sglang", "preset": "deepseek-r1-distill-llama-8b-a10g",
         "replicas": 2},
        {"name": "qwen3.6-35b-a3b", "engine": "sglang", "preset": "qwen3.6-35b-a3b-fp8-4xl4",
         "sglang": {"model_path": "/opt/dlami/nvme/models/Qwen-Qwen3.6-35B-A3B-FP8", "api_key": "${ENGINE_KEY}",
                    "env": {"SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION": "false"}}},
        {"name": "big-multinode", "engine": "sglang",
         "sglang": {"model_path": "deepseek-ai/DeepSeek-V3", "tp": 16, "nnodes": 2, "trust_remote_code": True}},
        {"name": "ollama-vision", "engine": "external", "urls": ["http://10.0.0.5:11434/v1"]},
    ],
}


@pytest.fixture
def aggregated(tmp_path: Path) -> FleetConfig:
    return fleet_from(tmp_path, AGGREGATED)


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package {package!r}); skipping its validation")
    return path
