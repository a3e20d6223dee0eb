"""One `sglfleet bench` invocation beyond a single run: repeats (A/B with confidence), the
automatic sweep (knee) and the max-goodput search, in that order.

Phases:
1. the base run: a listed `--sweep`, or one load step repeated `--repeat` times (every
   repeat runs all targets side by side); skipped when only `--sweep auto` and/or
   `--max-goodput` were asked for;
2. `--sweep auto[:rate]`: double the load until every target saturated;
3. `--max-goodput`: per target (one at a time, so each has the server to itself), bisect the
   request rate for the highest rate whose SLO attainment meets `--attainment`.

A max-goodput step lasts at least `goodput_min_s` of arrivals (more requests at higher
rates): with a fixed handful of requests, any rate "meets" the SLO because the queue never
gets longer than the handful. Rate steps (`auto:rate`, `--max-goodput`) drop `--concurrency`:
a client-side cap would hold requests back before they are sent and hide the server's queue
from TTFT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from rich.console import Console

from sglfleet.bench import search, stats
from sglfleet.bench.client import Target
from sglfleet.bench.loadgen import LoadShape
from sglfleet.bench.report import RunReport
from sglfleet.bench.runner import Step, run_step, run_steps
from sglfleet.bench.tokens import Tokenizer
from sglfleet.bench.workloads import BenchRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    steps: list[Step]  # the base run (one step unless a listed sweep)
    repeat: int = 1
    auto: search.AutoSweep | None = None
    max_goodput: bool = False
    attainment: float = 0.9
    max_goodput_start: float = 1.0
    goodput_min_s: float = 10.0  # a max-goodput step sends max(n, rate x this) requests
    slo_ms: dict[str, float] | None = None
    scrape: bool = False

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ValueError("--repeat must be at least 1")
        if self.repeat > 1 and len(self.steps) > 1:
            raise ValueError("--repeat works with one load step, not with a listed --sweep")
        if self.max_goodput and not self.slo_ms:
            raise ValueError("--max-goodput needs --slo (attainment is measured against it)")
        if not 0 < self.attainment <= 1:
            raise ValueError("--attainment must be in (0, 1]")

    @property
    def base_run(self) -> bool:
        return self.repeat > 1 or len(self.steps) > 1 or (self.auto is None
                                                           and not self.max_goodput)


@dataclass(slots=True)
class Outcome:
    reports: list[RunReport] = field(default_factory=list)  # every measured run, in order
    base: list[RunReport] = field(default_factory=list)  # the base run (first repeat)
    ab: stats.ABResult | None = None
    sweep: search.SweepResult | None = None
    max_goodput: dict[str, search.MaxGoodput] = field(default_factory=dict)


async def execute(
    plan: Plan,
    targets: Sequence[Target],
    requests: list[BenchRequest],
    tok: Tokenizer,
    console: Console | None,
) -> Outcome:
    out = Outcome()

    async def run(ts: Sequence[Target], step: Step, name: str) -> list[RunReport]:
        return await run_step(ts, requests, step, tok, slo_ms=plan.slo_ms, console=console,
                              scrape=plan.scrape, name=name)

    labels = [t.label for t in targets]
    if plan.base_run:
        if plan.repeat == 1:
            out.base = await run_steps(targets, requests, plan.steps, tok, slo_ms=plan.slo_ms,
                                       console=console, scrape=plan.scrape)
            out.reports.extend(out.base)
        else:
            summaries = []
            for i in range(plan.repeat):
                step = replace(plan.steps[0], suffix=f"{plan.steps[0].suffix} #{i + 1}")
                reps = await run(targets, step, f"repeat {i + 1}/{plan.repeat}")
                out.reports.extend(reps)
                out.base = out.base or reps
                summaries.append([r.summary for r in reps])
            out.ab = stats.ab_result(labels, summaries)
    base_shape = plan.steps[0].shape
    if plan.auto is not None:
        auto = plan.auto

        async def measure(x: float, name: str) -> list[RunReport]:
            step = _auto_step(auto.kind, x, base_shape, len(requests))
            return await run(targets, step, name)

        out.sweep = await search.auto_sweep(auto, labels, measure)
        out.reports.extend(out.sweep.reports)
    if plan.max_goodput:
        for target in targets:
            async def measure_rate(rate: float, name: str, t: Target = target) -> RunReport:
                n = base_shape.num_requests or len(requests)
                if base_shape.duration_s is None:
                    n = max(n, math.ceil(rate * plan.goodput_min_s))
                step = Step(shape=replace(base_shape, request_rate=rate, replay=False,
                                          concurrency=None, num_requests=n),
                            suffix=f" rate={rate:.3g}")
                reps = await run([t], step, f"{t.label} {name}")
                out.reports.extend(reps)
                return reps[0]

            out.max_goodput[target.label] = await search.max_goodput(
                measure_rate, plan.max_goodput_start, plan.attainment)
    return out


def _auto_step(kind: str, x: float, base: LoadShape, n_requests: int) -> Step:
    if kind == "concurrency":
        c = int(x)
        n = None if base.duration_s else max(base.num_requests or n_requests, 2 * c)
        return Step(shape=replace(base, concurrency=c, request_rate=math.inf, num_requests=n,
                                  replay=False), suffix=f" c={c}")
    return Step(shape=replace(base, request_rate=x, replay=False, concurrency=None),
                suffix=f" rate={x:g}")
