"""A Grafana dashboard (JSON model) over sglfleet's Prometheus metrics and SGLang's `sglang:*`.

`render_dashboard()` returns the dict; `write_dashboard(out_dir)` writes it as
`sglfleet-dashboard.json` for `sglfleet deploy grafana -o DIR`. Import it in Grafana
(Dashboards > New > Import) and pick the Prometheus data source that scrapes the gateway's
`/metrics` (and, when they expose it, each SGLang worker's `/metrics`, started with
`--enable-metrics`). The `sglang:*` row stays empty for engines that export no such metrics.

Metric names are the ones in `sglfleet.metrics` (counters carry prometheus-client's `_total`
suffix); a test checks every name used here against a live registry and the simulated
SGLang worker's registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD_UID = "sglfleet-fleet"
FILE_NAME = "sglfleet-dashboard.json"
_DS = {"type": "prometheus", "uid": "${datasource}"}
_M = 'model=~"$model"'  # sglfleet label
_SM = 'model_name=~"$model"'  # SGLang label
_RATE = "[$__rate_interval]"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Panel:
    title: str
    unit: str
    targets: tuple[Target, ...]
    description: str = ""
    max: float | None = None


def _quantiles(metric: str, by: str, sel: str, qs: tuple[float, ...] = (0.5, 0.99)) -> tuple[Target, ...]:
    return tuple(
        Target(expr=f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}{_RATE})))",
                legend=f"{{{{{by}}}}} p{int(q * 100)}")
        for q in qs
    )


def _ratio(num: str, den: str, by: str) -> str:
    return f"sum by ({by}) ({num}) / sum by ({by}) ({den})"


GATEWAY_PANELS: tuple[Panel, ...] = (
    Panel(title="Requests / s", unit="reqps", targets=(
        Target(expr=f"sum by (model) (rate(sglfleet_requests_total{{{_M}}}{_RATE}))", legend="{{model}}"),)),
    Panel(title="Error rate (5xx and 429)", unit="percentunit", max=1, targets=(
        Target(expr=_ratio(f'rate(sglfleet_requests_total{{{_M},status=~"5..|429"}}{_RATE})',
                           f"rate(sglfleet_requests_total{{{_M}}}{_RATE})", "model"), legend="{{model}}"),)),
    Panel(title="Time to first token", unit="s",
          targets=_quantiles("sglfleet_time_to_first_token_seconds", "model", _M)),
    Panel(title="Request duration", unit="s",
          targets=_quantiles("sglfleet_request_duration_seconds", "model", _M)),
    Panel(title="Output tokens / s", unit="short", targets=(
        Target(expr=f'sum by (model) (rate(sglfleet_tokens_total{{{_M},kind="completion"}}{_RATE}))',
               legend="{{model}} output"),
        Target(expr=f'sum by (model) (rate(sglfleet_tokens_total{{{_M},kind="prompt"}}{_RATE}))',
               legend="{{model}} prompt"))),
    Panel(title="Prefix-cache reuse (cache-aware routing hits)", unit="percentunit", max=1, targets=(
        Target(expr=_ratio(f'rate(sglfleet_cache_aware_lookups_total{{{_M},result="hit"}}{_RATE})',
                           f"rate(sglfleet_cache_aware_lookups_total{{{_M}}}{_RATE})", "model"),
               legend="{{model}}"),)),
    Panel(title="Cache prediction error: |predicted - engine-reported cached tokens|", unit="short", targets=(
        Target(expr=_ratio(f"rate(sglfleet_cache_prediction_error_tokens_sum{{{_M}}}{_RATE})",
                           f"rate(sglfleet_cache_prediction_error_tokens_count{{{_M}}}{_RATE})", "model, policy"),
               legend="{{model}} {{policy}} mean"),
        *_quantiles("sglfleet_cache_prediction_error_tokens", "policy", _M, (0.9,)))),
    Panel(title="In-flight requests per worker", unit="short", targets=(
        Target(expr=f"sglfleet_worker_inflight{{{_M}}}", legend="{{model}} {{worker}}"),)),
    Panel(title="Queue depth and active requests", unit="short", targets=(
        Target(expr=f"sglfleet_queue_depth{{{_M}}}", legend="{{model}} queued"),
        Target(expr=f"sglfleet_model_active_requests{{{_M}}}", legend="{{model}} active"))),
    Panel(title="Worker health (1 healthy) and breaker (0 closed, 1 open, 2 half-open)", unit="short", targets=(
        Target(expr=f"sglfleet_worker_healthy{{{_M}}}", legend="{{worker}} healthy"),
        Target(expr=f"sglfleet_worker_eligible{{{_M}}}", legend="{{worker}} eligible"),
        Target(expr=f"sglfleet_worker_breaker_state{{{_M}}}", legend="{{worker}} breaker"))),
    Panel(title="Upstream errors, retries, client disconnects / s", unit="short", targets=(
        Target(expr=f"sum by (model, kind) (rate(sglfleet_upstream_errors_total{{{_M}}}{_RATE}))",
               legend="{{model}} {{kind}}"),
        Target(expr=f"sum by (model) (rate(sglfleet_retries_total{{{_M}}}{_RATE}))", legend="{{model}} retries"),
        Target(expr=f"sum by (model) (rate(sglfleet_client_disconnects_total{{{_M}}}{_RATE}))",
               legend="{{model}} disconnects"))),
)

SGLANG_PANELS: tuple[Panel, ...] = (
    Panel(title="SGLang running and queued requests", unit="short", targets=(
        Target(expr=f"sum by (model_name) (sglang:num_running_reqs{{{_SM}}})", legend="{{model_name}} running"),
        Target(expr=f"sum by (model_name) (sglang:num_queue_reqs{{{_SM}}})", legend="{{model_name}} queued"))),
    Panel(title="SGLang KV-cache token usage", unit="percentunit", max=1, targets=(
        Target(expr=f"avg by (model_name) (sglang:token_usage{{{_SM}}})", legend="{{model_name}}"),)),
    Panel(title="SGLang prefix-cache hit rate (cached / prompt tokens)", unit="percentunit", max=1, targets=(
        Target(expr=_ratio(f"rate(sglang:cached_tokens_total{{{_SM}}}{_RATE})",
                           f"rate(sglang:prompt_tokens_total{{{_SM}}}{_RATE})", "model_name"),
               legend="{{model_name}}"),)),
    Panel(title="SGLang generation throughput", unit="short", targets=(
        Target(expr=f"sum by (model_name) (sglang:gen_throughput{{{_SM}}})", legend="{{model_name}} tok/s"),)),
    Panel(title="SGLang time to first token", unit="s",
          targets=_quantiles("sglang:time_to_first_token_seconds", "model_name", _SM)),
    Panel(title="SGLang inter-token latency", unit="s",
          targets=_quantiles("sglang:inter_token_latency_seconds", "model_name", _SM)),
)


def _panel_json(p: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": p.unit, "min": 0, "custom": {"lineWidth": 2, "fillOpacity": 8,
                                                                   "spanNulls": False}}
    if p.max is not None:
        defaults["max"] = p.max
    return {
        "id": panel_id, "type": "timeseries", "title": p.title, "description": p.description,
        "datasource": _DS, "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": _DS, "expr": t.expr, "legendFormat": t.legend}
                    for i, t in enumerate(p.targets)],
    }


def _row(title: str, panel_id: int, y: int) -> dict[str, Any]:
    return {"id": panel_id, "type": "row", "title": title, "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}


def _layout(sections: tuple[tuple[str, tuple[Panel, ...]], ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    y = 0
    for title, panels in sections:
        out.append(_row(title, len(out) + 1, y))
        y += 1
        for i, p in enumerate(panels):
            out.append(_panel_json(p, len(out) + 1, 12 * (i % 2), y + 8 * (i // 2)))
        y += 8 * ((len(panels) + 1) // 2)
    return out


def _templating() -> dict[str, Any]:
    return {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1},
        {"name": "model", "label": "model", "type": "query", "datasource": _DS,
         "query": {"query": "label_values(sglfleet_requests_total, model)", "refId": "model"},
         "definition": "label_values(sglfleet_requests_total, model)", "refresh": 2,
         "includeAll": True, "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"},
         "hide": 0, "sort": 1},
    ]}


def render_dashboard() -> dict[str, Any]:
    """The Grafana dashboard JSON model (schema 39, Grafana 10+), ready to import."""
    return {
        "uid": DASHBOARD_UID, "title": "sglfleet", "tags": ["sglfleet", "sglang", "llm"],
        "description": "sglfleet gateway (sglfleet_*) and SGLang engine (sglang:*) metrics",
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "time": {"from": "now-30m", "to": "now"}, "refresh": "10s", "timezone": "",
        "annotations": {"list": []}, "links": [], "templating": _templating(),
        "panels": _layout((("Gateway (sglfleet_*)", GATEWAY_PANELS),
                           ("SGLang engines (sglang:*)", SGLANG_PANELS))),
    }


def write_dashboard(out_dir: Path) -> Path:
    """Write the dashboard to `out_dir/sglfleet-dashboard.json`; returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE_NAME
    path.write_text(json.dumps(render_dashboard(), indent=2) + "\n")
    return path
