"""systemd units pass `systemd-analyze verify`; ordering, restart policy and secrets are right."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from sglfleet.deploy import systemd
from sglfleet.deploy.render import write_files
from tests.deploy.conftest import need_tool
from tests.deploy.golden import render_golden


def verify(tmp_path: Path, files: dict[str, str]) -> None:
    tool = need_tool("systemd-analyze", "systemd")
    units = [p for p in write_files(files, tmp_path) if p.suffix in (".service", ".timer")]
    proc = subprocess.run([tool, "verify", "--man=no", "--generators=no", *map(str, units)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    problems = [ln for ln in (proc.stderr + proc.stdout).splitlines()
                if "sglfleet" in ln or ln.startswith(str(tmp_path))]
    assert proc.returncode == 0 and not problems, proc.stderr + proc.stdout


def test_golden_units_verify(tmp_path: Path) -> None:
    # The target host's sglfleet path does not exist here; verify with this checkout's.
    sglfleet_bin = shutil.which("sglfleet") or str(Path(sys.executable).with_name("sglfleet"))
    opts = systemd.SystemdOptions(sglfleet_bin=sglfleet_bin)
    from sglfleet.deploy.plan import load_fleet
    from tests.deploy.golden import EXAMPLES

    verify(tmp_path, systemd.render(load_fleet(EXAMPLES / "deploy-qwen-4xl4.yaml"), opts))


def test_golden_units_content() -> None:
    files = render_golden("deploy-qwen-4xl4", "systemd", "plain", None)
    engine = files["sglfleet-sglang-qwen3-6-35b-a3b.service"]
    assert "--host 172.31.46.190 --port 30100 --tp-size 4" in engine  # bind rule from seed 004
    assert "Restart=always" in engine and "TimeoutStartSec=1200s" in engine
    gateway = files["sglfleet-gateway.service"]
    assert "After=network-online.target sglfleet-sglang-qwen3-6-35b-a3b.service" in gateway
    assert "EnvironmentFile=-/etc/sglfleet/sglfleet.env" in gateway
    checks = json.loads(files["watchdog.json"])["engines"]
    assert checks == [{"unit": "sglfleet-sglang-qwen3-6-35b-a3b.service", "url": "http://172.31.46.190:30100",
                       "served_model": "qwen3.6-35b-a3b"}]
    assert "OnUnitActiveSec=2min" in files["sglfleet-watchdog.timer"]
    assert "SGLFLEET_API_KEY=" in files["sglfleet.env.example"]


def test_secrets_are_references(tmp_path: Path, aggregated: Any) -> None:
    sglfleet_bin = str(Path(sys.executable).with_name("sglfleet"))
    files = systemd.render(aggregated, systemd.SystemdOptions(sglfleet_bin=sglfleet_bin))
    unit = files["sglfleet-sglang-qwen3-6-35b-a3b.service"]
    assert "--api-key ${SGLANG_API_KEY}" in unit and "ENGINE_KEY" not in unit
    assert "Environment=SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION=false" in unit
    assert "SGLANG_API_KEY=" in files["sglfleet.env.example"]
    verify(tmp_path, files)


def test_pd_model_is_two_units_on_their_own_gpus(tmp_path: Path) -> None:
    from sglfleet.config import parse_config
    from sglfleet.deploy.plan import load_fleet
    from tests.deploy.golden import EXAMPLES

    sglfleet_bin = shutil.which("sglfleet") or str(Path(sys.executable).with_name("sglfleet"))
    opts = systemd.SystemdOptions(sglfleet_bin=sglfleet_bin)
    files = systemd.render(load_fleet(EXAMPLES / "deploy-deepseek.yaml"), opts)
    prefill = files["sglfleet-sglang-deepseek-r1-distill-llama-8b-pd-prefill.service"]
    decode = files["sglfleet-sglang-deepseek-r1-distill-llama-8b-pd-decode.service"]
    assert "--disaggregation-mode prefill" in prefill and "--disaggregation-mode decode" in decode
    assert "Environment=CUDA_VISIBLE_DEVICES=1" in prefill and "Environment=CUDA_VISIBLE_DEVICES=2" in decode
    gateway = files["sglfleet-gateway.service"]
    assert "sglfleet-sglang-deepseek-r1-distill-llama-8b-pd-prefill.service" in gateway
    pd = parse_config(yaml.safe_load(files["fleet.yaml"]), env={}).model("deepseek-r1-distill-llama-8b-pd")
    assert pd.prefill is not None and pd.decode is not None
    assert pd.prefill.urls == ("http://127.0.0.1:30000",) and pd.prefill.bootstrap_ports == (8998,)
    assert pd.decode.urls == ("http://127.0.0.1:30001",)
    verify(tmp_path, files)
