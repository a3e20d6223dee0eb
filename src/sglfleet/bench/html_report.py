"""`--html FILE`: one self-contained page (inline CSS and SVG; no script, no CDN, no matplotlib)
built from the JSON document, so a saved `--output-json` can be rendered again later."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

from sglfleet.bench import scrape, stats, svg

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1200px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
.meta{color:#555;font-size:13px}table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.sig{color:#b00;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #eee}
.note{font-size:13px;color:#444}
"""

RUN_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ok", "completed", "{:d}"), ("failed", "failed", "{:d}"),
    ("req/s", "request_throughput", "{:.2f}"), ("out tok/s", "output_throughput", "{:.1f}"),
    ("TTFT p50 ms", "ttft_ms.median", "{:.1f}"), ("TTFT p99 ms", "ttft_ms.p99", "{:.1f}"),
    ("ITL p50 ms", "itl_ms.median", "{:.2f}"), ("TPOT p50 ms", "tpot_ms.median", "{:.2f}"),
    ("E2E p50 ms", "e2e_ms.median", "{:.1f}"), ("attainment", "slo_attainment", "{:.1%}"),
    ("goodput req/s", "request_goodput", "{:.2f}"), ("goodput tok/s", "token_goodput", "{:.1f}"),
)


def _get(d: dict[str, Any], path: str) -> Any:
    value: Any = d
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return escape(str(value))


def _load(load: dict[str, Any]) -> str:
    if load.get("replay"):
        return f"trace x{load.get('time_scale', 1)}"
    parts = []
    if load.get("concurrency") is not None:
        parts.append(f"c={load['concurrency']}")
    if load.get("request_rate") not in (None, "inf"):
        parts.append(f"rate={float(load['request_rate']):.3g}")
    return ", ".join(parts) or "all at once"


def runs_table(runs: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name, _, _ in RUN_COLUMNS)
    rows = []
    for run in runs:
        cells = "".join(f"<td>{_cell(_get(run['summary'], path), fmt)}</td>"
                        for _, path, fmt in RUN_COLUMNS)
        rows.append(f"<tr><td>{escape(run['label'])}</td><td>{escape(_load(run['load']))}</td>"
                    f"{cells}</tr>")
    return f"<table><tr><th>run</th><th>load</th>{head}</tr>{''.join(rows)}</table>"


def _cdf(values: list[float]) -> tuple[list[float], list[float]]:
    xs = sorted(values)
    return xs, [(i + 1) / len(xs) for i in range(len(xs))]


def distributions(doc: dict[str, Any], run_ids: Sequence[int]) -> str:
    ttft: list[svg.Series] = []
    itl: list[svg.Series] = []
    for i in run_ids:
        recs = [r for r in doc.get("requests", []) if r.get("run") == i and r.get("ok")]
        label = doc["runs"][i]["label"]
        t = [r["ttft_ms"] for r in recs if r.get("ttft_ms") is not None]
        gaps = [(b - a) * 1000.0 for r in recs for a, b in pairwise(r["chunk_s"])]
        if t:
            ttft.append(svg.Series(label, *_cdf(t)))
        if gaps:
            itl.append(svg.Series(label, *_cdf(gaps)))
    return ('<div class="charts">'
            + svg.line_chart(ttft, "TTFT distribution (CDF)", "TTFT (ms)", "fraction", steps=True)
            + svg.line_chart(itl, "ITL distribution (CDF)", "ITL (ms)", "fraction", steps=True)
            + "</div>")


def ab_section(ab: dict[str, Any]) -> str:
    labels = list(next(iter(ab["intervals"].values())).keys()) if ab["intervals"] else []
    base = ab["baseline"]
    others = [lab for lab in labels if lab != base]
    head = "".join(f"<th>{escape(lab)}</th>" for lab in labels)
    head += "".join(f"<th>{escape(lab)} − {escape(base)}</th>" for lab in others)
    rows, charts = [], []
    for path, name, _ in stats.FIGURES:
        ivs = ab["intervals"].get(path)
        if not ivs:
            continue
        pct = path == "slo_attainment"

        def f(v: float, pct: bool = pct) -> str:
            return f"{v:.1%}" if pct else f"{v:,.2f}"

        cells = "".join(
            f"<td>{f(iv['mean'])} ± {f((iv['high'] - iv['low']) / 2)}</td>" if (iv := ivs.get(lab))
            else "<td>-</td>" for lab in labels)
        for lab in others:
            d = ab["differences"].get(path, {}).get(lab)
            if d is None:
                cells += "<td></td>"
                continue
            ratio = "" if d["ratio"] is None else f" ({d['ratio']:.2f}x)"
            text = (f"{d['diff']['mean']:+,.2f} [{d['diff']['low']:+,.2f}, "
                    f"{d['diff']['high']:+,.2f}]{ratio}")
            cls = ' class="sig"' if d["significant"] else ""
            cells += f"<td{cls}>{escape(text)}{' *' if d['significant'] else ''}</td>"
        rows.append(f"<tr><td>{escape(name)}</td>{cells}</tr>")
        if path in ("output_throughput", "ttft_ms.median", "e2e_ms.median", "slo_attainment",
                    "itl_ms.median"):
            bars = []
            for lab in labels:
                iv = ivs.get(lab)
                if iv is None:
                    continue
                d = ab["differences"].get(path, {}).get(lab)
                mark = " *" if d and d["significant"] else ""
                bars.append(svg.Bar(lab, iv["mean"], iv["low"], iv["high"], mark))
            charts.append(svg.bar_chart(bars, f"{name} (95% CI)", name))
    return (f"<h2>A/B over {ab['repeats']} repeats</h2><p class=note>Mean ± 95 % confidence "
            f"half-width over repeats; differences to <b>{escape(base)}</b> are paired by "
            "repeat, and marked <span class=sig>*</span> when their 95 % interval excludes 0."
            f"</p><table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"
            f'<div class="charts">{"".join(charts)}</div>')


def sweep_section(sweep: dict[str, Any], knees: dict[str, Any]) -> str:
    kind = sweep["kind"]
    tag = "c=" if kind == "concurrency" else "r="
    lat, thr = [], []
    for label, pts in sweep["points"].items():
        notes = [f"{tag}{p['x']:g}" for p in pts]
        lat.append(svg.Series(label, [p["output_throughput"] for p in pts],
                              [p["ttft_p50_ms"] or math.nan for p in pts], notes))
        thr.append(svg.Series(label, [p["x"] for p in pts],
                              [p["request_throughput"] for p in pts]))
    items = []
    for label, k in knees.items():
        if k is None:
            items.append(f"<li>{escape(label)}: no knee</li>")
            continue
        sat = ("not saturated" if k["saturated_at"] is None
               else f"saturated at {k['saturated_at']:g}")
        items.append(f"<li><b>{escape(label)}</b>: knee at {escape(kind)} "
                     f"<b>{k['value']:.3g}</b>, {k['request_throughput']:.3g} req/s, "
                     f"{k['output_throughput']:.1f} output tok/s (best step {k['step']:g}; "
                     f"{sat})</li>")
    return (f"<h2>Saturation sweep ({escape(kind)} doubled)</h2><ul>{''.join(items)}</ul>"
            '<div class="charts">'
            + svg.line_chart(lat, "Throughput against latency", "output tok/s", "TTFT p50 (ms)")
            + svg.line_chart(thr, f"Request throughput against {kind}", kind, "req/s",
                             log_x=True)
            + "</div>")


def goodput_section(mgs: dict[str, Any]) -> str:
    good, att, items = [], [], []
    for label, mg in mgs.items():
        pts = sorted(mg["steps"], key=lambda p: p["rate"])
        good.append(svg.Series(label, [p["rate"] for p in pts],
                               [p["request_goodput"] or 0.0 for p in pts]))
        att.append(svg.Series(label, [p["rate"] for p in pts],
                              [(p["attainment"] or 0.0) * 100 for p in pts]))
        if mg["rate"] is None:
            items.append(f"<li>{escape(label)}: no tried rate met the target</li>")
        else:
            items.append(f"<li><b>{escape(label)}</b>: <b>{mg['rate']:.3g} req/s</b>, attainment "
                         f"{mg['attainment']:.1%}, goodput {mg['request_goodput']:.3g} req/s / "
                         f"{mg['token_goodput']:.1f} tok/s</li>")
    target = next(iter(mgs.values()))["attainment_target"]
    return (f"<h2>Max goodput (attainment ≥ {target:.0%})</h2><ul>{''.join(items)}</ul>"
            '<div class="charts">'
            + svg.line_chart(good, "Goodput against request rate", "request rate (req/s)",
                             "goodput (req/s)")
            + svg.line_chart(att, "SLO attainment against request rate", "request rate (req/s)",
                             "attainment (%)")
            + "</div>")


def server_section(runs: Sequence[dict[str, Any]]) -> str:
    scraped = [r for r in runs if r.get("server_metrics")]
    if not scraped:
        return ""
    head = "".join(f"<th>{escape(r['label'])}</th>" for r in scraped)
    rows = []
    for name, desc in scrape.GAUGES.items():
        cells = [g and f"{g['mean']:.2f} / {g['max']:.2f}"
                 for g in (r["server_metrics"]["gauges"].get(name) for r in scraped)]
        if any(cells):
            rows.append(f"<tr><td>{escape(desc)} (mean / max)</td>"
                        + "".join(f"<td>{c or '-'}</td>" for c in cells) + "</tr>")
    for name, desc in scrape.COUNTERS.items():
        values = [r["server_metrics"]["counters"].get(name) for r in scraped]
        if any(v is not None for v in values):
            rows.append(f"<tr><td>{escape(desc)} (increase)</td>" + "".join(
                f"<td>{'-' if v is None else f'{v:,.0f}'}</td>" for v in values) + "</tr>")
    errors = "".join(f"<li>{escape(r['label'])}: unavailable ({escape(r['server_metrics']['error'])})"
                     "</li>" for r in scraped if r["server_metrics"].get("error"))
    return (f"<h2>Server-side metrics</h2><table><tr><th>metric</th>{head}</tr>{''.join(rows)}"
            f"</table><ul>{errors}</ul>")


def build_html(doc: dict[str, Any]) -> str:
    runs = doc.get("runs", [])
    options = doc.get("config", {}).get("options", {})
    base_ids = doc.get("base_runs") or list(range(min(len(runs), 4)))
    parts = [
        f"<h1>sglfleet bench report</h1><p class=meta>created {escape(str(doc.get('created')))}"
        f"; model {escape(str(options.get('model', '?')))}; tokenizer "
        f"{escape(str(doc.get('config', {}).get('tokenizer', '?')))}</p>",
        "<p class=meta>options: " + escape(", ".join(f"{k}={v}" for k, v in options.items()))
        + "</p>",
    ]
    if doc.get("ab"):
        parts.append(ab_section(doc["ab"]))
    if doc.get("sweep"):
        parts.append(sweep_section(doc["sweep"], doc.get("knee") or {}))
    if doc.get("max_goodput"):
        parts.append(goodput_section(doc["max_goodput"]))
    if base_ids:
        parts.append("<h2>Latency distributions</h2>" + distributions(doc, base_ids))
    parts.append(server_section([runs[i] for i in base_ids if i < len(runs)]))
    parts.append(f"<h2>All runs ({len(runs)})</h2>" + runs_table(runs))
    slo = next((r["summary"].get("slo_ms") for r in runs if r["summary"].get("slo_ms")), None)
    if slo:
        parts.append("<p class=note>SLO: " + escape(", ".join(f"{k} ≤ {v:g} ms"
                                                               for k, v in slo.items()))
                     + "; attainment = requests meeting every SLO / all requests.</p>")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<title>sglfleet bench report</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")


def write_html(path: str | Path, doc: dict[str, Any]) -> None:
    Path(path).write_text(build_html(doc), encoding="utf-8")
