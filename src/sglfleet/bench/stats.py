"""Confidence intervals over repeated runs (`--repeat N`) and which A/B differences are real.

Each repeat runs every target side by side in the same window, so repeats pair up: the
difference between a target and the baseline (the first target) is taken per repeat, and
the difference is significant when the 95 % confidence interval of its mean excludes zero
(a paired t-test at the 5 % level). Per-target intervals are mean ± t·s/√n over the
repeats' summary figures (Student's t, n − 1 degrees of freedom).

Student's t quantiles come from the standard table below (30 values) rather than SciPy,
which would be a large dependency for a handful of numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sglfleet.bench.metrics import Summary

# two-sided 95 % (0.975 quantile) of Student's t for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_T975_LARGE = ((40, 2.021), (60, 2.000), (120, 1.980))

# figure path in Summary -> label; "higher is better" drives the winner mark in reports
FIGURES: tuple[tuple[str, str, bool], ...] = (
    ("request_throughput", "Request throughput (req/s)", True),
    ("output_throughput", "Output token throughput (tok/s)", True),
    ("ttft_ms.median", "TTFT median (ms)", False),
    ("ttft_ms.p99", "TTFT p99 (ms)", False),
    ("tpot_ms.median", "TPOT median (ms)", False),
    ("itl_ms.median", "ITL median (ms)", False),
    ("e2e_ms.median", "E2E median (ms)", False),
    ("e2e_ms.p99", "E2E p99 (ms)", False),
    ("slo_attainment", "SLO attainment", True),
    ("request_goodput", "Request goodput (req/s)", True),
    ("token_goodput", "Token goodput (tok/s)", True),
)


def t975(df: int) -> float:
    """0.975 quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("need at least 1 degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    for limit, value in _T975_LARGE:
        if df <= limit:
            return value
    return 1.960


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_json(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def interval(values: Sequence[float]) -> Interval | None:
    """Mean with its 95 % confidence interval; None for fewer than two values."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, len(values))


def figure(summary: Summary, path: str) -> float | None:
    value: Any = summary
    for part in path.split("."):
        value = getattr(value, part)
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Difference:
    """Target minus baseline, paired by repeat."""

    diff: Interval
    ratio: float | None  # mean(target) / mean(baseline)
    significant: bool  # the interval of the difference excludes 0

    def to_json(self) -> dict[str, Any]:
        return {"diff": self.diff.to_json(), "ratio": self.ratio, "significant": self.significant}


@dataclass(frozen=True, slots=True)
class ABResult:
    labels: tuple[str, ...]
    repeats: int
    intervals: dict[str, dict[str, Interval]]  # figure path -> label -> interval
    differences: dict[str, dict[str, Difference]]  # figure path -> label (not baseline) -> diff

    def to_json(self) -> dict[str, Any]:
        return {
            "repeats": self.repeats,
            "baseline": self.labels[0],
            "intervals": {f: {lab: iv.to_json() for lab, iv in by.items()}
                          for f, by in self.intervals.items()},
            "differences": {f: {lab: d.to_json() for lab, d in by.items()}
                            for f, by in self.differences.items()},
        }


def ab_result(labels: Sequence[str], repeats: Sequence[Sequence[Summary]]) -> ABResult:
    """`repeats[i][j]`: the summary of target `labels[j]` in repeat i."""
    intervals: dict[str, dict[str, Interval]] = {}
    differences: dict[str, dict[str, Difference]] = {}
    for path, _, _ in FIGURES:
        series = [[figure(rep[j], path) for rep in repeats] for j in range(len(labels))]
        by_label = {}
        for label, values in zip(labels, series, strict=True):
            iv = interval([v for v in values if v is not None])
            if iv is not None:
                by_label[label] = iv
        if by_label:
            intervals[path] = by_label
        base = series[0]
        diffs = {}
        for label, values in zip(labels[1:], series[1:], strict=True):
            pairs = [(a, b) for a, b in zip(values, base, strict=True) if a is not None and b is not None]
            iv = interval([a - b for a, b in pairs])
            if iv is None:
                continue
            base_mean = statistics.fmean(b for _, b in pairs)
            ratio = statistics.fmean(a for a, _ in pairs) / base_mean if base_mean else None
            diffs[label] = Difference(iv, ratio, iv.low > 0 or iv.high < 0)
        if diffs:
            differences[path] = diffs
    return ABResult(tuple(labels), len(repeats), intervals, differences)
