"""`sglfleet deploy ...`: plain files in DIR, clear non-zero exits on bad input, the watchdog check."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sglfleet.cli import app
from tests.deploy.golden import EXAMPLES

runner = CliRunner()


@pytest.mark.parametrize(("target", "example", "extra", "expect"), [
    ("compose", "deploy-gptoss-gb10", [], "compose.yaml"),
    ("systemd", "deploy-qwen-4xl4", [], "sglfleet-watchdog.timer"),
    ("nginx", "deploy-qwen-4xl4", ["--server", "10.0.0.1:8000"], "sglfleet-upstream.conf"),
    ("k8s", "deploy-deepseek", ["--flavor", "dynamo"], "dynamographdeployment-deepseek-r1-distill-llama-8b-agg.yaml"),
    ("k8s", "deploy-deepseek", ["--flavor", "plain"], "deployment-sglang-deepseek-r1-distill-llama-8b-pd-prefill.yaml"),
    ("k8s", "deploy-deepseek", ["--flavor", "lws"],
     "leaderworkerset-sglang-deepseek-r1-distill-llama-8b-pd-decode.yaml"),
    ("k8s", "deploy-deepseek", ["--gateway-hpa-max", "6"], "horizontalpodautoscaler-sglfleet-gateway.yaml"),
])
def test_deploy_writes_plain_files(tmp_path: Path, target: str, example: str, extra: list[str], expect: str) -> None:
    result = runner.invoke(app, ["deploy", target, str(EXAMPLES / f"{example}.yaml"), "-o", str(tmp_path), *extra])
    assert result.exit_code == 0, result.output
    assert (tmp_path / expect).is_file()


def test_invalid_fleet_file_exits_2_with_the_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: 'gpt-oss:120b'\n    engine: sglang\n    replicas: 0\n")
    result = runner.invoke(app, ["deploy", "compose", str(bad), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "invalid fleet file" in result.output and "models[0].name" in result.output
    assert "models[0].replicas" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_file_and_bad_target_options(tmp_path: Path) -> None:
    result = runner.invoke(app, ["deploy", "k8s", str(tmp_path / "nope.yaml"), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "cannot read" in result.output
    result = runner.invoke(app, ["deploy", "k8s", str(EXAMPLES / "deploy-deepseek.yaml"), "-o", str(tmp_path),
                                 "--flavor", "helm"])
    assert result.exit_code == 1 and "unknown k8s flavor" in result.output
    result = runner.invoke(app, ["deploy", "k8s", str(EXAMPLES / "deploy-deepseek.yaml"), "-o", str(tmp_path),
                                 "--gateway-replicas", "4", "--gateway-hpa-max", "3"])
    assert result.exit_code == 1 and "below --gateway-replicas 4" in result.output
    assert "Traceback" not in result.output


def test_grafana_target(tmp_path: Path) -> None:
    result = runner.invoke(app, ["deploy", "grafana", str(EXAMPLES / "deploy-qwen-4xl4.yaml"), "-o", str(tmp_path)])
    if importlib.util.find_spec("sglfleet.dashboard") is None:
        assert result.exit_code == 1 and "Grafana dashboard is not available" in result.output
    else:
        assert result.exit_code == 0, result.output
        assert isinstance(json.loads((tmp_path / "sglfleet-dashboard.json").read_text()), dict)


def fake_engine(served: str, health: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = (health, b"") if self.path == "/health" else (
                200, json.dumps({"object": "list", "data": [{"id": served}]}).encode())
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_watchdog_reports_each_engine(tmp_path: Path) -> None:
    good, wrong, sick = fake_engine("qwen", 200), fake_engine("llama", 200), fake_engine("qwen", 503)
    try:
        spec = tmp_path / "watchdog.json"
        spec.write_text(json.dumps({"engines": [
            {"unit": f"u{i}.service", "url": f"http://127.0.0.1:{s.server_port}", "served_model": "qwen"}
            for i, s in enumerate((good, wrong, sick))]}))
        result = runner.invoke(app, ["deploy", "watchdog", str(spec), "--timeout-s", "5"])
        assert result.exit_code == 1
        lines = result.output.splitlines()
        assert lines[0] == "u0.service: ok"
        assert "expected 'qwen'" in lines[1] and "/health answered 503" in lines[2]
    finally:
        for s in (good, wrong, sick):
            s.shutdown()
