"""Compose files validate against the compose specification schema and gate the gateway on health."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

from sglfleet.deploy import compose
from sglfleet.deploy.plan import DeployError
from tests.deploy.conftest import fleet_from
from tests.deploy.golden import render_golden

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (PyPI) is needed to validate compose files")


def compose_schema() -> dict[str, Any]:
    try:
        ref = files("check_jsonschema").joinpath("builtin_schemas/vendor/compose-spec.json")
    except ModuleNotFoundError:
        pytest.skip("check-jsonschema (PyPI) ships the compose-spec schema; install it to run this test")
    return dict(json.loads(ref.read_text()))


def validate(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    jsonschema.validate(doc, compose_schema())  # raises with the failing path
    return dict(doc)


def test_golden_compose_matches_the_compose_spec() -> None:
    doc = validate(render_golden("deploy-gptoss-gb10", "compose", "plain", None)["compose.yaml"])
    engine = doc["services"]["sglang-gpt-oss-120b-eagle3"]
    assert engine["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert engine["ipc"] == "host" and engine["shm_size"] == "32g"
    assert "/models/gpt-oss-120b:/models/gpt-oss-120b:ro" in engine["volumes"]
    assert "/models/EAGLE3-gpt-oss-120b-bf16:/models/EAGLE3-gpt-oss-120b-bf16:ro" in engine["volumes"]
    assert engine["healthcheck"]["start_period"] == "1200s"
    assert "http://127.0.0.1:30000/health" in engine["healthcheck"]["test"][-1]
    gateway = doc["services"]["sglfleet-gateway"]
    assert gateway["depends_on"]["sglang-gpt-oss-120b-eagle3"]["condition"] == "service_healthy"
    assert gateway["environment"] == {"SGLFLEET_API_KEY": "${SGLFLEET_API_KEY}"}


def test_gateway_fleet_file_points_at_engine_services(tmp_path: Path) -> None:
    from sglfleet.config import parse_config

    files_ = render_golden("deploy-gptoss-gb10", "compose", "plain", None)
    data = yaml.safe_load(files_["gateway/fleet.yaml"])
    cfg = parse_config(data, env={"SGLFLEET_API_KEY": "k"})  # the gateway can load it
    m = cfg.model("gpt-oss-120b-eagle3")
    assert m.engine == "external" and m.urls == ("http://sglang-gpt-oss-120b-eagle3:30000",)
    assert cfg.gateway.host == "0.0.0.0" and cfg.gateway.api_keys == ("k",)


def test_multi_model_compose_is_valid_and_hides_secrets(tmp_path: Path, aggregated: Any) -> None:
    out = compose.render(aggregated)
    doc = validate(out["compose.yaml"])
    qwen = doc["services"]["sglang-qwen3-6-35b-a3b"]
    assert qwen["command"][qwen["command"].index("--api-key") + 1] == "${SGLANG_API_KEY}"
    # several engines on one host: each its own GPUs, in file order (deepseek has GPU 0)
    assert qwen["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["1", "2", "3", "4"]
    assert doc["services"]["sglang-deepseek-r1-distill-llama-8b"]["deploy"]["replicas"] == 2
    assert "ollama-vision" in out["gateway/fleet.yaml"]  # external models pass through


def test_pd_model_is_two_services_on_their_own_gpus() -> None:
    from sglfleet.config import parse_config

    files_ = render_golden("deploy-deepseek", "compose", "plain", None)
    doc = validate(files_["compose.yaml"])
    names = ["sglang-deepseek-r1-distill-llama-8b", "sglang-deepseek-r1-distill-llama-8b-pd-prefill",
             "sglang-deepseek-r1-distill-llama-8b-pd-decode"]
    devices = [doc["services"][n]["deploy"]["resources"]["reservations"]["devices"][0] for n in names]
    assert [d["device_ids"] for d in devices] == [["0"], ["1"], ["2"]]  # not GPU 0 three times
    prefill, decode = (doc["services"][n]["command"] for n in names[1:])
    assert prefill[prefill.index("--disaggregation-mode") + 1] == "prefill"
    assert decode[decode.index("--disaggregation-mode") + 1] == "decode"
    assert set(doc["services"]["sglfleet-gateway"]["depends_on"]) == set(names)
    cfg = parse_config(yaml.safe_load(files_["gateway/fleet.yaml"]), env={})
    pd = cfg.model("deepseek-r1-distill-llama-8b-pd")
    assert pd.prefill is not None and pd.decode is not None
    assert pd.prefill.urls == ("http://sglang-deepseek-r1-distill-llama-8b-pd-prefill:30000",)
    assert pd.prefill.bootstrap_ports == (8998,)
    assert pd.decode.urls == ("http://sglang-deepseek-r1-distill-llama-8b-pd-decode:30001",)


def test_ib_device_gets_the_rdma_devices(tmp_path: Path) -> None:
    cfg = fleet_from(tmp_path, {"models": [{
        "name": "pd", "engine": "sglang", "preset": "deepseek-r1-distill-llama-8b-pd",
        "sglang": {"model_path": "x/y", "disaggregation_ib_device": "mlx5_0"}}]})
    doc = validate(compose.render(cfg)["compose.yaml"])
    for svc in ("sglang-pd-prefill", "sglang-pd-decode"):
        s = doc["services"][svc]
        assert s["devices"] == ["/dev/infiniband:/dev/infiniband"] and s["cap_add"] == ["IPC_LOCK"]
        assert s["command"][s["command"].index("--disaggregation-ib-device") + 1] == "mlx5_0"


def test_colliding_service_names_are_refused(tmp_path: Path) -> None:
    cfg = fleet_from(tmp_path, {"models": [
        {"name": "a.b", "engine": "sglang", "model_path": "x/y"},
        {"name": "a-b", "engine": "sglang", "model_path": "x/z"}]})
    with pytest.raises(DeployError, match="same service name"):
        compose.render(cfg)
