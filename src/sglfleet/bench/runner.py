"""Orchestration of one `sglfleet bench` invocation: tokenizer, workload, runs, summaries."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import aiohttp
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sglfleet.bench import metrics
from sglfleet.bench.client import RequestRecord, Target
from sglfleet.bench.loadgen import LoadShape, run_load
from sglfleet.bench.report import RunReport
from sglfleet.bench.scrape import Scraper
from sglfleet.bench.tokens import Tokenizer
from sglfleet.bench.workloads import BenchRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One measured step of a sweep (or the only step): a load shape and a label suffix."""

    shape: LoadShape
    suffix: str = ""


def parse_sweep(text: str, base: LoadShape) -> list[Step]:
    """`1,2,4` or `concurrency:1,2,4` sweeps concurrency; `rate:0.5,1,2` sweeps request rate."""
    kind, sep, values = text.partition(":")
    if not sep:
        kind, values = "concurrency", text
    kind = kind.strip().lower()
    numbers = [v.strip() for v in values.split(",") if v.strip()]
    if not numbers:
        raise ValueError(f"--sweep {text!r}: no values")
    steps = []
    for v in numbers:
        if kind in ("concurrency", "c"):
            steps.append(Step(shape=replace(base, concurrency=int(v)), suffix=f" c={int(v)}"))
        elif kind in ("rate", "request-rate", "r"):
            steps.append(Step(shape=replace(base, request_rate=float(v)), suffix=f" rate={v}"))
        else:
            raise ValueError(f"--sweep {text!r}: use concurrency:1,2,4 or rate:0.5,1,2")
    return steps


async def discover_model(base_url: str, headers: dict[str, str]) -> str:
    """The first model id listed by GET /v1/models."""
    url = base_url.rstrip("/").removesuffix("/v1") + "/v1/models"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(url, headers=headers) as resp:
            if resp.status != 200:
                raise ValueError(f"GET {url}: HTTP {resp.status}; pass --model explicitly")
            data = orjson.loads(await resp.read())
    models = data.get("data") or []
    if not models:
        raise ValueError(f"GET {url}: no models listed; pass --model explicitly")
    return str(models[0]["id"])


def _total(requests: Sequence[BenchRequest], shape: LoadShape) -> int | None:
    if shape.duration_s is not None:
        return None
    chosen = requests[: shape.num_requests or len(requests)]
    return sum(len(r.turns) for r in chosen)


async def run_steps(
    targets: Sequence[Target],
    requests: list[BenchRequest],
    steps: Sequence[Step],
    tokenizer: Tokenizer,
    *,
    slo_ms: dict[str, float] | None = None,
    console: Console | None = None,
    scrape: bool = False,
) -> list[RunReport]:
    """Run every step against all targets (interleaved), with live progress when a console
    is given; returns one RunReport per (step, target)."""
    reports: list[RunReport] = []
    for i, step in enumerate(steps):
        name = f"step {i + 1}/{len(steps)}" if len(steps) > 1 else ""
        reports.extend(await run_step(targets, requests, step, tokenizer, slo_ms=slo_ms,
                                      console=console, scrape=scrape, name=name))
    return reports


async def run_step(
    targets: Sequence[Target],
    requests: list[BenchRequest],
    step: Step,
    tokenizer: Tokenizer,
    *,
    slo_ms: dict[str, float] | None = None,
    console: Console | None = None,
    scrape: bool = False,
    name: str = "",
) -> list[RunReport]:
    """One measured step against all targets (interleaved); one RunReport per target."""
    count_source = "tokenizer" if tokenizer.is_exact else "approx"
    progress = _progress(console)
    tasks = {}
    if progress is not None:
        total = _total(requests, step.shape)
        prefix = f"[{name}] " if name else ""
        for t in targets:
            tasks[t.label] = progress.add_task(f"{prefix}{t.label}{step.suffix}", total=total,
                                               failed=0, tokens=0)
    failed: dict[str, int] = {t.label: 0 for t in targets}
    tokens: dict[str, int] = {t.label: 0 for t in targets}

    def on_record(r: RequestRecord) -> None:
        failed[r.target] += 0 if r.ok else 1
        tokens[r.target] += r.output_tokens
        if progress is not None:
            progress.update(tasks[r.target], advance=1, failed=failed[r.target],
                            tokens=tokens[r.target])

    scraper = Scraper(list(targets)) if scrape else None
    if scraper is not None:
        await scraper.start()
    if progress is not None:
        progress.start()
    try:
        runs = await run_load(list(targets), requests, step.shape, count_tokens=tokenizer.count,
                              count_source=count_source, on_record=on_record)
    finally:
        if progress is not None:
            progress.stop()
        scraped = await scraper.stop() if scraper is not None else {}
    reports = []
    for run in runs:
        summary = metrics.summarize(run.records, run.duration_s, run.t0, slo_ms)
        reports.append(RunReport(f"{run.target.label}{step.suffix}", run, step.shape, summary,
                                 scraped.get(run.target.label)))
    if console is not None and name:
        done = ", ".join(f"{r.label}: {r.summary.completed} ok / {r.summary.failed} failed, "
                         f"{r.summary.request_throughput:.2f} req/s" for r in reports)
        console.print(f"[dim]{name}: {done}[/dim]")
    return reports


def _progress(console: Console | None) -> Progress | None:
    if console is None:
        return None
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("{task.fields[tokens]} out tok"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def default_shape(
    *,
    concurrency: int | None,
    request_rate: float | None,
    num_requests: int | None,
    duration_s: float | None,
    warmup: int,
    seed: int,
    burstiness: float = 1.0,
) -> LoadShape:
    if concurrency is not None and concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    if request_rate is not None and request_rate <= 0:
        raise ValueError("--request-rate must be > 0")
    if duration_s is not None and concurrency is None and request_rate is None:
        raise ValueError("--duration needs --concurrency or --request-rate")
    return LoadShape(
        concurrency=concurrency,
        request_rate=math.inf if request_rate is None else request_rate,
        burstiness=burstiness,
        num_requests=num_requests,
        duration_s=duration_s,
        warmup=warmup,
        seed=seed,
    )
