"""The Grafana dashboard only names metrics that sglfleet and SGLang really export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from sglfleet.config import BreakerConfig, ModelConfig
from sglfleet.core.worker import Worker
from sglfleet.deploy.grafana import render_dashboard, write_dashboard
from sglfleet.metrics import Metrics, registry_gauges
from sglfleet.routing.pool import ModelPool
from sglfleet.routing.registry import Registry
from sglfleet.sim.metrics import SimMetrics

_NAME = re.compile(r"\b((?:sglfleet_|sglang:)[A-Za-z0-9_:]+)")


def _exported(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def _sglfleet_names() -> set[str]:
    m = Metrics()
    pool = ModelPool(ModelConfig(name="m", urls=("http://127.0.0.1:9",), engine="external"))
    pool.add(Worker.create("m", "http://127.0.0.1:9", BreakerConfig()))
    reg = Registry()
    reg.add(pool)
    m.add_live_collector(lambda: registry_gauges(reg))
    m.observe_request("m", "chat", 200, 0.1)
    mm = m.model("m")
    mm.ttft.observe(0.1)
    mm.tokens_prompt.inc()
    mm.tokens_completion.inc()
    mm.retries.inc()
    mm.disconnects.inc()
    mm.cache_hits.inc()
    m.observe_cache_prediction("m", "cache_aware", None, 0, 0, 10, 2)
    m.upstream_errors.labels("m", "w1", "connect").inc()
    return _exported(generate_latest(m.registry).decode())


def _sglang_names() -> set[str]:
    sim = SimMetrics("m", 4096)
    return _exported(generate_latest(sim.registry).decode())


def test_every_metric_in_the_dashboard_is_exported() -> None:
    exprs = [t["expr"] for p in render_dashboard()["panels"] for t in p.get("targets", [])]
    used = {n for e in exprs for n in _NAME.findall(e)}
    assert any(n.startswith("sglang:") for n in used) and any(n.startswith("sglfleet_") for n in used)
    known = _sglfleet_names() | _sglang_names()
    assert used - known == set()


def test_dashboard_shape_and_write(tmp_path: Path) -> None:
    d = render_dashboard()
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in d["templating"]["list"]} == {"datasource", "model"}
    for p in d["panels"]:
        if p["type"] == "timeseries":
            assert p["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
            assert 0 <= p["gridPos"]["x"] < 24
    path = write_dashboard(tmp_path / "grafana")
    assert json.loads(path.read_text()) == d
