"""Reports: the final rich table, the JSON document (schema in docs/bench.md), the PNG plot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from rich.console import Console
from rich.table import Table

from sglfleet.bench import metrics
from sglfleet.bench.client import RequestRecord
from sglfleet.bench.loadgen import LoadShape, TargetRun
from sglfleet.bench.scrape import ScrapeResult

SCHEMA_VERSION = 2
SENSITIVE_HEADER_PARTS = ("authorization", "api-key", "apikey", "token", "cookie", "secret",
                          "password")


def redact_header(key: str, value: str) -> str:
    """The header's value, or "***" when its name suggests a credential."""
    return "***" if any(p in key.lower() for p in SENSITIVE_HEADER_PARTS) else value


def redact_url(url: str) -> str:
    """The URL without a password in its authority part."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redact_spec(spec: str) -> str:
    """A `--compare` / `--header` text with credentials masked."""
    out = []
    for word in spec.split():
        key, sep, value = word.partition(":")
        if "://" in word:
            label, eq, url = word.rpartition("=") if "=" in word.split("://")[0] else ("", "", word)
            out.append(f"{label}{eq}{redact_url(url)}")
        elif sep and key:
            out.append(f"{key}:{redact_header(key, value)}")
        else:
            out.append(word)
    return " ".join(out)

# (label, attribute path in Summary, format) for the table; ratios use the same rows.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("Successful requests", "completed", "{:d}"),
    ("Failed requests", "failed", "{:d}"),
    ("Benchmark duration (s)", "duration_s", "{:.2f}"),
    ("Total input tokens", "total_input_tokens", "{:d}"),
    ("Total generated tokens", "total_output_tokens", "{:d}"),
    ("Request throughput (req/s)", "request_throughput", "{:.2f}"),
    ("Request goodput (req/s)", "request_goodput", "{:.2f}"),
    ("SLO attainment", "slo_attainment", "{:.1%}"),
    ("Token goodput (tok/s)", "token_goodput", "{:.2f}"),
    ("Input token throughput (tok/s)", "input_throughput", "{:.2f}"),
    ("Output token throughput (tok/s)", "output_throughput", "{:.2f}"),
    ("Peak output token throughput (tok/s)", "peak_output_tokens_per_s", "{:.2f}"),
    ("Total token throughput (tok/s)", "total_token_throughput", "{:.2f}"),
    ("Concurrency (avg in flight)", "concurrency", "{:.2f}"),
    ("Peak concurrent requests", "peak_concurrent_requests", "{:d}"),
    ("TTFT mean (ms)", "ttft_ms.mean", "{:.1f}"),
    ("TTFT median (ms)", "ttft_ms.median", "{:.1f}"),
    ("TTFT p99 (ms)", "ttft_ms.p99", "{:.1f}"),
    ("TPOT mean (ms)", "tpot_ms.mean", "{:.2f}"),
    ("TPOT median (ms)", "tpot_ms.median", "{:.2f}"),
    ("TPOT p99 (ms)", "tpot_ms.p99", "{:.2f}"),
    ("ITL mean (ms)", "itl_ms.mean", "{:.2f}"),
    ("ITL median (ms)", "itl_ms.median", "{:.2f}"),
    ("ITL p99 (ms)", "itl_ms.p99", "{:.2f}"),
    ("E2E latency mean (ms)", "e2e_ms.mean", "{:.1f}"),
    ("E2E latency median (ms)", "e2e_ms.median", "{:.1f}"),
    ("E2E latency p99 (ms)", "e2e_ms.p99", "{:.1f}"),
    ("Tokens per chunk (mean)", "tokens_per_chunk.mean", "{:.2f}"),
)
RATIO_KEYS = ("request_throughput", "output_throughput", "ttft_ms.median", "ttft_ms.p99",
              "tpot_ms.median", "itl_ms.median", "e2e_ms.median", "e2e_ms.p99")


@dataclass(frozen=True, slots=True)
class RunReport:
    """One measured run of one target: what was asked, what came back, the summary."""

    label: str
    run: TargetRun
    shape: LoadShape
    summary: metrics.Summary
    scrape: ScrapeResult | None = None  # --scrape-metrics: the target's /metrics during the run


def _get(summary: metrics.Summary, path: str) -> Any:
    value: Any = summary
    for part in path.split("."):
        value = getattr(value, part)
    return value


def ratios(reports: Sequence[RunReport]) -> dict[str, dict[str, float | None]]:
    """Each run's figures divided by the first run's (the baseline)."""
    if len(reports) < 2:
        return {}
    base = reports[0].summary
    out: dict[str, dict[str, float | None]] = {}
    for rep in reports[1:]:
        row: dict[str, float | None] = {}
        for key in RATIO_KEYS:
            a, b = _get(rep.summary, key), _get(base, key)
            row[key] = a / b if a is not None and b else None
        out[rep.label] = row
    return out


def render_table(reports: Sequence[RunReport], console: Console, tokenizer_name: str) -> None:
    table = Table(title="sglfleet bench", show_lines=False)
    table.add_column("metric")
    for rep in reports:
        table.add_column(rep.label, justify="right")
    if len(reports) > 1:
        for rep in reports[1:]:
            table.add_column(f"{rep.label} / {reports[0].label}", justify="right")
    ratio_map = ratios(reports)
    for label, path, fmt in ROWS:
        cells = []
        for rep in reports:
            value = _get(rep.summary, path)
            cells.append("-" if value is None else fmt.format(value))
        for rep in reports[1:]:
            r = ratio_map[rep.label].get(path) if path in RATIO_KEYS else None
            cells.append("" if r is None else f"{r:.2f}x")
        table.add_row(label, *cells)
    console.print(table)
    first = reports[0].summary
    console.print(
        f"[dim]output tokens from: {first.output_token_source}; input tokens from: "
        f"{first.input_token_source}; client tokenizer: {tokenizer_name}; "
        f"load: {reports[0].shape.describe()}[/dim]"
    )
    for rep in reports:
        for message, count in rep.summary.errors.items():
            console.print(f"[red]{rep.label}: {count} x {message}[/red]")


def record_json(record: RequestRecord, run: int, t0: float) -> dict[str, Any]:
    data = record.to_json()
    data["run"] = run
    if record.ok:  # derived, for readers; ignored when records are loaded back
        data["ttft_ms"] = metrics.ttft_s(record) * 1000.0
        data["e2e_ms"] = metrics.e2e_s(record) * 1000.0
        tpot = metrics.tpot_s(record)
        data["tpot_ms"] = None if tpot is None else tpot * 1000.0
    data["start_offset_s"] = record.start_s - t0
    return data


def build_json(reports: Sequence[RunReport], config: dict[str, Any]) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    for i, rep in enumerate(reports):
        shape = {f: getattr(rep.shape, f) for f in rep.shape.__dataclass_fields__}
        for key, value in shape.items():
            if isinstance(value, float) and value == float("inf"):
                shape[key] = "inf"
        target = rep.run.target
        runs.append({
            "label": rep.label,
            "base_url": redact_url(target.base_url),
            "url": redact_url(target.url),
            "model": target.model,
            "endpoint": target.endpoint,
            "headers": {k: redact_header(k, v) for k, v in target.headers},
            "load": shape,
            "t0_s": rep.run.t0,
            "summary": rep.summary.to_json(),
            "server_metrics": None if rep.scrape is None else rep.scrape.to_json(),
        })
        requests.extend(record_json(r, i, rep.run.t0) for r in rep.run.records)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "sglfleet bench",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": config,
        "summary": runs[0]["summary"] if runs else None,
        "runs": runs,
        "comparison": ratios(reports),
        "requests": requests,
    }


def write_json(path: str | Path, document: dict[str, Any]) -> None:
    Path(path).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def load_records(document: dict[str, Any], run: int = 0) -> list[RequestRecord]:
    """Per-request records of one run from a JSON document, to recompute metrics."""
    fields = set(RequestRecord.__dataclass_fields__)
    return [
        RequestRecord.from_json({k: v for k, v in r.items() if k in fields})
        for r in document["requests"]
        if r["run"] == run
    ]


def write_plot(path: str | Path, reports: Sequence[RunReport]) -> None:
    """Latency CDFs (TTFT, TPOT, E2E) and output tokens/s over time, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = (
        (axes[0][0], "TTFT (ms)", lambda r: [metrics.ttft_s(r)]),
        (axes[0][1], "TPOT (ms)", lambda r: [t] if (t := metrics.tpot_s(r)) is not None else []),
        (axes[1][0], "E2E latency (ms)", lambda r: [metrics.e2e_s(r)]),
    )
    for ax, title, pick in panels:
        for rep in reports:
            values = sorted(v * 1000.0 for r in rep.run.records if r.ok for v in pick(r))
            if values:
                ys = [(i + 1) / len(values) for i in range(len(values))]
                ax.step(values, ys, where="post", label=rep.label)
        ax.set_xlabel(title)
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{title} CDF")
        ax.grid(alpha=0.3)
        ax.legend()
    ax = axes[1][1]
    for rep in reports:
        series = metrics.output_timeline([r for r in rep.run.records if r.ok], rep.run.t0)
        ax.plot(range(len(series)), series, drawstyle="steps-post", label=rep.label)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("output tokens/s")
    ax.set_title("Output throughput over time (1 s buckets)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
