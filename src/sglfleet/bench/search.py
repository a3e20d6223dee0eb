"""Adaptive load searches: `--sweep auto` (find the knee) and `--max-goodput` (bisect the rate).

Both drive a `measure` callable that runs one load step and returns its reports, so the
search logic is pure and testable without a server.

- Knee: double the concurrency (or request rate) until the server saturates: request
  throughput grows less than `KNEE_GROWTH` (5 %) over the previous step while TTFT p50 rises.
  The knee is where the linear part of the curve meets the plateau: plateau throughput
  divided by the throughput per unit of load measured at the first step (for a rate sweep
  that slope is about 1, so the knee rate is about the plateau throughput).
- Max goodput: the highest request rate whose SLO attainment stays at or above the target:
  double (or halve) from the start rate until the target is bracketed, then bisect until
  the bracket is narrower than `rel_tol` of its lower end.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from sglfleet.bench.report import RunReport

KNEE_GROWTH = 0.05  # "grows less than 5 %"
AUTO_MAX_STEPS = 10
AUTO_MAX_CONCURRENCY = 4096


@dataclass(frozen=True, slots=True)
class AutoSweep:
    """`auto`, `auto:concurrency`, `auto:rate`, optionally `:START` and `:MAX`."""

    kind: str  # concurrency | rate
    start: float
    max_value: float


def parse_auto(text: str, concurrency: int | None, request_rate: float | None) -> AutoSweep | None:
    """The auto sweep described by `--sweep TEXT`, or None when TEXT is a value list."""
    parts = [p.strip().lower() for p in text.split(":")]
    if parts[0] != "auto":
        return None
    kind = parts[1] if len(parts) > 1 and parts[1] else "concurrency"
    if kind in ("c", "concurrency"):
        kind = "concurrency"
    elif kind in ("r", "rate", "request-rate"):
        kind = "rate"
    else:
        raise ValueError(f"--sweep {text!r}: use auto, auto:concurrency or auto:rate[:START[:MAX]]")
    default_start = (concurrency or 1) if kind == "concurrency" else (request_rate or 1.0)
    default_max = AUTO_MAX_CONCURRENCY if kind == "concurrency" else math.inf
    try:
        start = float(parts[2]) if len(parts) > 2 and parts[2] else float(default_start)
        max_value = float(parts[3]) if len(parts) > 3 and parts[3] else float(default_max)
    except ValueError:
        raise ValueError(f"--sweep {text!r}: START and MAX must be numbers") from None
    if start <= 0 or max_value < start:
        raise ValueError(f"--sweep {text!r}: need 0 < START <= MAX")
    if kind == "concurrency":
        start = float(max(1, round(start)))
    return AutoSweep(kind, start, max_value)


@dataclass(frozen=True, slots=True)
class Point:
    """One measured step of one target, reduced to what the searches look at."""

    x: float  # concurrency or request rate
    request_throughput: float
    output_throughput: float
    ttft_p50_ms: float | None
    attainment: float | None = None
    request_goodput: float | None = None
    token_goodput: float | None = None

    @classmethod
    def of(cls, x: float, rep: RunReport) -> Point:
        s = rep.summary
        return cls(x, s.request_throughput, s.output_throughput, s.ttft_ms.median,
                   s.slo_attainment, s.request_goodput, s.token_goodput)


def saturated(prev: Point, cur: Point) -> bool:
    """Throughput grew less than KNEE_GROWTH while TTFT p50 rose (or nothing succeeded)."""
    if cur.request_throughput <= 0:
        return True
    grew_little = cur.request_throughput < prev.request_throughput * (1 + KNEE_GROWTH)
    ttft_rose = (cur.ttft_p50_ms or 0.0) > (prev.ttft_p50_ms or 0.0)
    return grew_little and ttft_rose


@dataclass(frozen=True, slots=True)
class Knee:
    kind: str  # concurrency | rate
    value: float  # the knee: where the linear part meets the plateau
    step: float  # the measured step with the highest throughput
    request_throughput: float  # plateau (highest measured) request throughput
    output_throughput: float  # output tok/s at that step
    ttft_p50_ms: float | None  # at that step
    saturated_at: float | None  # the step that showed saturation; None: never saturated

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "value": self.value, "step": self.step,
                "request_throughput": self.request_throughput,
                "output_throughput": self.output_throughput, "ttft_p50_ms": self.ttft_p50_ms,
                "saturated_at": self.saturated_at}


def find_knee(kind: str, points: Sequence[Point]) -> Knee | None:
    """The knee of a doubling sweep (points in sweep order), or None without a success."""
    usable = [p for p in points if p.request_throughput > 0]
    if not usable:
        return None
    sat_at = next((cur.x for prev, cur in pairwise(points) if saturated(prev, cur)), None)
    upto = [p for p in usable if sat_at is None or p.x <= sat_at]
    best = max(upto, key=lambda p: p.request_throughput)
    first = usable[0]
    slope = first.request_throughput / first.x
    value = best.request_throughput / slope if slope > 0 else best.x
    value = min(max(value, first.x), best.x if sat_at is None else sat_at)
    if kind == "concurrency":
        value = float(max(1, round(value)))
    return Knee(kind, value, best.x, best.request_throughput, best.output_throughput,
                best.ttft_p50_ms, sat_at)


Measure = Callable[[float, str], Awaitable[Sequence[RunReport]]]  # (x, step name) -> reports


@dataclass(slots=True)
class SweepResult:
    kind: str
    points: dict[str, list[Point]] = field(default_factory=dict)  # per target label
    reports: list[RunReport] = field(default_factory=list)
    knees: dict[str, Knee | None] = field(default_factory=dict)


async def auto_sweep(auto: AutoSweep, labels: Sequence[str], measure: Measure) -> SweepResult:
    """Double the load until every target saturated (or AUTO_MAX_STEPS / the max value)."""
    result = SweepResult(auto.kind, {label: [] for label in labels})
    done: set[str] = set()
    x = auto.start
    for i in range(AUTO_MAX_STEPS):
        reps = await measure(x, f"auto step {i + 1}")
        result.reports.extend(reps)
        for label, rep in zip(labels, reps, strict=True):
            pts = result.points[label]
            pts.append(Point.of(x, rep))
            if len(pts) >= 2 and saturated(pts[-2], pts[-1]):
                done.add(label)
        if len(done) == len(labels) or x * 2 > auto.max_value:
            break
        x *= 2
    result.knees = {label: find_knee(auto.kind, pts) for label, pts in result.points.items()}
    return result


@dataclass(frozen=True, slots=True)
class MaxGoodput:
    rate: float | None  # highest rate that met the attainment target; None: none did
    attainment_target: float
    attainment: float | None
    request_goodput: float | None
    token_goodput: float | None
    output_throughput: float | None
    upper: float | None  # lowest rate seen that missed the target
    steps: tuple[Point, ...]

    def to_json(self) -> dict[str, object]:
        return {"rate": self.rate, "attainment_target": self.attainment_target,
                "attainment": self.attainment, "request_goodput": self.request_goodput,
                "token_goodput": self.token_goodput, "output_throughput": self.output_throughput,
                "upper": self.upper,
                "steps": [{"rate": p.x, "attainment": p.attainment,
                           "request_goodput": p.request_goodput,
                           "token_goodput": p.token_goodput,
                           "request_throughput": p.request_throughput} for p in self.steps]}


async def max_goodput(
    measure: Callable[[float, str], Awaitable[RunReport]],
    start: float,
    target: float,
    *,
    rel_tol: float = 0.05,
    max_steps: int = 14,
    max_halvings: int = 3,
) -> MaxGoodput:
    """Bisect the request rate for the highest rate with attainment >= target.

    When the start rate already misses, the rate is halved at most `max_halvings` times
    (a step lasts about num_requests / rate, so very low rates cost a lot of time)."""
    steps: list[Point] = []

    async def meets(rate: float) -> bool:
        rep = await measure(rate, f"max-goodput step {len(steps) + 1}")
        p = Point.of(rate, rep)
        steps.append(p)
        return (p.attainment or 0.0) >= target

    lo: float | None = None
    hi: float | None = None
    rate = start
    halvings = 0
    while len(steps) < max_steps and (lo is None or hi is None):
        if await meets(rate):
            lo = rate
            if hi is None:
                rate *= 2
        else:
            hi = rate
            if lo is None:
                if halvings == max_halvings:
                    break
                rate /= 2
                halvings += 1
    while lo is not None and hi is not None and (hi - lo) > rel_tol * lo and len(steps) < max_steps:
        mid = (lo + hi) / 2
        if await meets(mid):
            lo = mid
        else:
            hi = mid
    best = next((p for p in steps if lo is not None and p.x == lo), None)
    return MaxGoodput(
        rate=lo, attainment_target=target,
        attainment=best.attainment if best else None,
        request_goodput=best.request_goodput if best else None,
        token_goodput=best.token_goodput if best else None,
        output_throughput=best.output_throughput if best else None,
        upper=hi, steps=tuple(steps),
    )
