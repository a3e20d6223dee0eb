"""Console views and JSON entries for what `session.execute` found beyond plain runs:
A/B intervals, the knee, the max goodput, and server-side metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from sglfleet.bench import scrape, stats
from sglfleet.bench.report import RunReport
from sglfleet.bench.session import Outcome


def _num(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _fig(path: str, v: float) -> str:
    return f"{v:.1%}" if path == "slo_attainment" else f"{v:,.2f}"


def render_ab(ab: stats.ABResult, console: Console) -> None:
    """Mean ± 95 % half-width per target; differences to the baseline, * = significant."""
    table = Table(title=f"A/B over {ab.repeats} repeats (mean ± 95% CI; * = significant)")
    table.add_column("metric")
    for label in ab.labels:
        table.add_column(label, justify="right")
    for label in ab.labels[1:]:
        table.add_column(f"{label} − {ab.labels[0]}", justify="right")
    for path, name, _ in stats.FIGURES:
        ivs = ab.intervals.get(path)
        if not ivs:
            continue
        cells = [f"{_fig(path, iv.mean)} ± {_fig(path, iv.half_width)}" if (iv := ivs.get(lab))
                 else "-" for lab in ab.labels]
        for label in ab.labels[1:]:
            d = ab.differences.get(path, {}).get(label)
            if d is None:
                cells.append("")
                continue
            ratio = "" if d.ratio is None else f" ({d.ratio:.2f}x)"
            cells.append(f"{d.diff.mean:+,.2f} [{d.diff.low:+,.2f}, {d.diff.high:+,.2f}]"
                         f"{ratio}{' *' if d.significant else ''}")
        table.add_row(name, *cells)
    console.print(table)


def knee_line(label: str, knee: Any) -> str:
    if knee is None:
        return f"{label}: no knee (no successful step)"
    unit = "concurrency" if knee.kind == "concurrency" else "req/s"
    x = f"{knee.value:g}" if knee.kind == "concurrency" else f"{knee.value:.3g}"
    sat = ("not saturated within the sweep" if knee.saturated_at is None
           else f"saturated at {knee.saturated_at:g}")
    return (f"{label}: knee at {unit} {x}: {knee.request_throughput:.3g} req/s, "
            f"{knee.output_throughput:.1f} output tok/s, TTFT p50 {_num(knee.ttft_p50_ms, 1)} ms "
            f"(best step {knee.step:g}; {sat})")


def goodput_line(label: str, mg: Any) -> str:
    if mg.rate is None:
        return (f"{label}: no tried rate met attainment ≥ {mg.attainment_target:.0%} "
                f"(lowest tried {min(p.x for p in mg.steps):.3g} req/s)")
    upper = "" if mg.upper is None else f"; {mg.upper:.3g} req/s missed"
    return (f"{label}: max goodput at {mg.rate:.3g} req/s: attainment {mg.attainment:.1%}, "
            f"goodput {_num(mg.request_goodput, 3)} req/s, {_num(mg.token_goodput, 1)} tok/s"
            f"{upper} ({len(mg.steps)} steps)")


def render_server_metrics(reports: Sequence[RunReport], console: Console) -> None:
    scraped = [r for r in reports if r.scrape is not None]
    if not scraped:
        return
    table = Table(title="server-side metrics (/metrics during the run)")
    table.add_column("metric")
    for rep in scraped:
        table.add_column(rep.label, justify="right")
    rows: list[tuple[str, list[str]]] = []
    for name, desc in scrape.GAUGES.items():
        cells = [(f"{g['mean']:.2f} / {g['max']:.2f}" if (g := rep.scrape.gauges.get(name))
                  else "-") for rep in scraped if rep.scrape is not None]
        rows.append((f"{desc} (mean / max)", cells))
    for name, desc in scrape.COUNTERS.items():
        cells = [(f"{c:,.0f}" if (c := rep.scrape.counters.get(name)) is not None else "-")
                 for rep in scraped if rep.scrape is not None]
        rows.append((f"{desc} (increase)", cells))
    rows.append(("cache hit rate (cached / prompt tokens)",
                 [("-" if (h := rep.scrape.cache_hit_rate) is None else f"{h:.1%}")
                  for rep in scraped if rep.scrape is not None]))
    for name, cells in rows:
        if any(c != "-" for c in cells):
            table.add_row(name, *cells)
    console.print(table)
    for rep in scraped:
        if rep.scrape is not None and rep.scrape.error:
            console.print(f"[yellow]{rep.label}: server metrics unavailable "
                          f"({rep.scrape.error})[/yellow]")


def render(outcome: Outcome, console: Console) -> None:
    if outcome.ab is not None:
        render_ab(outcome.ab, console)
    if outcome.sweep is not None:
        console.print(f"[bold]knee ({outcome.sweep.kind} doubled until throughput grew < 5% "
                      "while TTFT p50 rose)[/bold]")
        for label, knee in outcome.sweep.knees.items():
            console.print("  " + knee_line(label, knee))
    if outcome.max_goodput:
        console.print("[bold]max goodput (highest request rate meeting the attainment "
                      "target)[/bold]")
        for label, mg in outcome.max_goodput.items():
            console.print("  " + goodput_line(label, mg))
    render_server_metrics(outcome.base, console)


def to_json(outcome: Outcome) -> dict[str, Any]:
    sweep = outcome.sweep
    return {
        "ab": None if outcome.ab is None else outcome.ab.to_json(),
        "sweep": None if sweep is None else {
            "kind": sweep.kind,
            "points": {label: [{"x": p.x, "request_throughput": p.request_throughput,
                                "output_throughput": p.output_throughput,
                                "ttft_p50_ms": p.ttft_p50_ms, "slo_attainment": p.attainment,
                                "request_goodput": p.request_goodput}
                               for p in pts] for label, pts in sweep.points.items()},
        },
        "knee": None if sweep is None else {
            label: None if k is None else k.to_json() for label, k in sweep.knees.items()},
        "max_goodput": {label: mg.to_json() for label, mg in outcome.max_goodput.items()}
        or None,
    }
