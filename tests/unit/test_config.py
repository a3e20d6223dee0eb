from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sglfleet.cli import app
from sglfleet.config import ConfigError, load_config, parse_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_default_config_is_the_embedded_model() -> None:
    cfg = load_config()
    assert [m.name for m in cfg.models] == ["smollm2-135m", "smollm2-135m-embed"]
    m, e = cfg.models
    assert m.engine == "llamacpp" and m.managed and m.resolved_model_path == "builtin:smollm2-135m"
    assert not m.capabilities.embedding
    assert e.engine == "llamacpp" and e.capabilities.embedding and e.resolved_model_path == m.resolved_model_path
    example = load_config(EXAMPLES / "embedded.yaml").models
    assert [(x.name, x.resolved_model_path, x.n_ctx, x.capabilities) for x in example] == [
        (x.name, x.resolved_model_path, x.n_ctx, x.capabilities) for x in cfg.models]
    assert cfg.gateway.host == "127.0.0.1" and cfg.gateway.port == 8000


def test_env_interpolation_and_default() -> None:
    cfg = parse_config({"gateway": {"api_keys": ["${KEY}", "${OTHER:-fallback}"]}}, env={"KEY": "s3cret"})
    assert cfg.gateway.api_keys == ("s3cret", "fallback")


def test_unset_variable_is_an_error_not_silently_no_auth() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"gateway": {"api_keys": ["${SGLFLEET_API_KEY}"]}}, env={})
    assert e.value.problems == [("gateway.api_keys[0]", "environment variable SGLFLEET_API_KEY is not set")]


def test_env_override_nested_gateway_keys() -> None:
    cfg = parse_config({}, env={"SGLFLEET_GATEWAY__PORT": "9001", "SGLFLEET_GATEWAY__RETRY__MAX_ATTEMPTS": "5"})
    assert cfg.gateway.port == 9001 and cfg.gateway.retry.max_attempts == 5


def test_colon_in_served_name_is_rejected_with_advice() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"models": [{"name": "qwen3.6:35b-a3b", "engine": "external", "urls": ["http://127.0.0.1:1"]}]}, env={})
    (path, msg), = e.value.problems
    assert path == "models[0].name" and "LoRA" in msg and "qwen3.6-35b-a3b" in msg


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"gateway": {"port": "x"}, "models": [{"name": "a", "engine": "external"},
                                                            {"name": "b", "replicas": 0}]}, env={})
    paths = {p for p, _ in e.value.problems}
    assert {"gateway.port", "models[0]", "models[1].replicas"} <= paths


def test_duplicate_names_and_aliases_rejected() -> None:
    with pytest.raises(ConfigError, match="used by"):
        parse_config({"models": [{"name": "a"}, {"name": "b", "aliases": ["a"]}]}, env={})


def test_config_check_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: 'x:y'\n    engine: nope\n")
    r = CliRunner().invoke(app, ["config", "check", str(bad)])
    assert r.exit_code == 1
    assert "models[0].name" in r.output and "models[0].engine" in r.output
    good = tmp_path / "good.yaml"
    good.write_text("models:\n  - name: m\n    engine: external\n    urls: ['http://127.0.0.1:9']\n")
    r = CliRunner().invoke(app, ["config", "check", str(good)])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("name", ["embedded.yaml", "two-replicas.yaml", "mixed.yaml"])
def test_shipped_examples_are_valid(name: str) -> None:
    env = {"SGLFLEET_API_KEY": "k", "SGLFLEET_ADMIN_KEY": "a"}
    cfg = load_config(EXAMPLES / name, env=env)
    assert cfg.models
