"""docs/metrics.md documents every metric the gateway exports."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sglfleet.config import parse_config
from sglfleet.core.worker import Worker
from sglfleet.fleet import Fleet

DOC = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()


def test_every_exported_metric_is_documented() -> None:
    cfg = parse_config({"models": [{"name": "m", "engine": "external", "urls": ["http://127.0.0.1:9"]}]}, env={})
    fleet = Fleet(cfg)
    from sglfleet.routing.pool import ModelPool

    pool = ModelPool(cfg.models[0])
    pool.add(Worker.create("m", "http://127.0.0.1:9", cfg.gateway.breaker))
    fleet.registry.add(pool)
    mm = fleet.metrics.model("m")
    mm.ttft.observe(0.1)
    fleet.metrics.observe_request("m", "chat", 200, 0.2)
    fleet.metrics.route_decisions.labels("auto", "MATH", "m").inc()
    fleet.metrics.upstream_errors.labels("m", "w1", "upstream_503").inc()
    names = {f.name for f in text_string_to_metric_families(generate_latest(fleet.metrics.registry).decode())}
    assert names
    missing = sorted(n for n in names if f"`{n}" not in DOC and not n.endswith("_created"))
    assert not missing, f"undocumented metrics: {missing}"
