"""SGLangProfile rendering and probe helpers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sglfleet.sglang.profile import (
    SGLangProfile,
    check_served_model,
    load_figures,
    parse_metrics,
    served_model_ids,
)


def test_minimal_argv_omits_sglang_defaults() -> None:
    assert SGLangProfile(model_path="m").to_argv() == [
        "python3", "-m", "sglang.launch_server", "--model-path", "m"]


def test_full_argv_order_and_formatting() -> None:
    p = SGLangProfile(model_path="m", tp=2, mem_fraction_static=0.88, enable_metrics=True,
                      api_key="s3cret-key", extra_args=("--foo", "1"))
    assert p.to_argv()[5:] == ["--tp-size", "2", "--mem-fraction-static", "0.88", "--enable-metrics",
                               "--api-key", "s3cret-key", "--foo", "1"]
    assert "s3cret-key" not in p.redacted_argv() and "***" in p.redacted_argv()
    assert "s3cret-key" not in repr(p)


def test_profile_is_frozen_and_strict() -> None:
    p = SGLangProfile(model_path="m")
    with pytest.raises(ValidationError):
        SGLangProfile(model_path="m", unknown_flag=1)
    with pytest.raises(ValidationError):
        p.tp = 2  # type: ignore[misc]


def test_docker_run_binds_all_interfaces_inside_the_container() -> None:
    cmd = SGLangProfile(model_path="/models/x", port=30001, docker_tag="spark").to_docker_run()
    assert cmd[:3] == ["docker", "run", "--rm"]
    assert "lmsysorg/sglang:spark" in cmd and "30001:30001" in cmd and "/models/x:/models/x:ro" in cmd
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"


def test_docker_run_expands_the_home_directory(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOME", "/home/alice")
    cmd = SGLangProfile(model_path="~/models/x").to_docker_run()
    assert "/home/alice/.cache/huggingface:/root/.cache/huggingface" in cmd
    assert "/home/alice/models/x:/home/alice/models/x:ro" in cmd
    assert not any(part.startswith("~") for part in cmd)


def test_probe_urls() -> None:
    p = SGLangProfile(model_path="m", host="0.0.0.0", port=30000, enable_metrics=True)
    assert p.health_url == "http://127.0.0.1:30000/health"
    assert p.models_url.endswith("/v1/models") and p.metrics_url.endswith("/metrics")
    assert SGLangProfile(model_path="m").metrics_url is None


def test_model_id_check() -> None:
    payload = {"object": "list", "data": [{"id": "qwen3.6-35b-a3b"}]}
    assert served_model_ids(payload) == ["qwen3.6-35b-a3b"]
    assert check_served_model(payload, "qwen3.6-35b-a3b") is None
    assert "expected 'other'" in (check_served_model(payload, "other") or "")


def test_metrics_parsing_sums_labels() -> None:
    text = "\n".join([
        "# HELP sglang:num_running_reqs running",
        'sglang:num_running_reqs{model_name="a"} 3.0',
        'sglang:num_running_reqs{model_name="b"} 2.0',
        'sglang:prompt_tokens_total{model_name="a"} 100',
        'sglang:cached_tokens_total{model_name="a"} 25',
        "other_metric 1",
    ])
    m = parse_metrics(text)
    assert m["sglang:num_running_reqs"] == 5.0 and "other_metric" not in m
    assert load_figures(m)["cache_hit_rate"] == 0.25
