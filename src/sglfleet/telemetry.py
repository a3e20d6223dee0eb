"""Rolling per-model statistics for the dashboard (last few minutes, 1-second buckets).

Fed once per finished request from the gateway's finish callback; read by the dashboard's
JSON endpoint. Memory is bounded: a fixed ring of buckets per model, at most
`MAX_TTFTS_PER_BUCKET` TTFT samples per bucket.

`series()` returns the raw buckets; `chart()` folds them into fixed-width steps (rates per
second, TTFT percentiles, error and prefix-cache-reuse ratios) for the charts.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 300
MAX_TTFTS_PER_BUCKET = 1000
DEFAULT_CHART_SPAN_S = 300
DEFAULT_CHART_STEP_S = 5


@dataclass(slots=True)
class Bucket:
    second: int
    requests: int = 0
    errors: int = 0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cache_hits: int = 0
    cache_lookups: int = 0
    prediction_error_sum: int = 0  # |cached tokens the policy predicted - those the engine reported|
    prediction_errors: int = 0
    ttfts: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChartSeries:
    """One model's chart points, oldest first; `t` is the step's start (unix seconds).

    Rates are per second over the part of the step that has elapsed; ratios are `None`
    where nothing was counted (a gap in the line, not a zero).
    """

    t: list[int]
    requests_per_s: list[float]
    output_tokens_per_s: list[float]
    error_rate: list[float | None]  # errors / requests
    ttft_p50_s: list[float | None]
    ttft_p99_s: list[float | None]
    cache_reuse: list[float | None]  # cache-aware routing hits / lookups
    cache_prediction_error: list[float | None]  # mean |predicted - engine-reported| cached tokens

    def as_dict(self) -> dict[str, list[int] | list[float] | list[float | None]]:
        return {
            "t": self.t, "requests_per_s": self.requests_per_s,
            "output_tokens_per_s": self.output_tokens_per_s, "error_rate": self.error_rate,
            "ttft_p50_s": self.ttft_p50_s, "ttft_p99_s": self.ttft_p99_s,
            "cache_reuse": self.cache_reuse, "cache_prediction_error": self.cache_prediction_error,
        }


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]) of already sorted values; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


class LiveStats:
    def __init__(self, window_s: int = WINDOW_S) -> None:
        self.window_s = window_s
        self._models: dict[str, deque[Bucket]] = {}

    def _bucket(self, model: str, now: float) -> Bucket:
        ring = self._models.get(model)
        if ring is None:
            ring = self._models[model] = deque(maxlen=self.window_s)
        sec = int(now)
        if not ring or ring[-1].second != sec:
            ring.append(Bucket(sec))
        return ring[-1]

    def record(self, model: str, *, status: int, ttft_s: float | None, prompt_tokens: int,
               completion_tokens: int, cache_hit: bool | None = None, prediction_error: int | None = None,
               now: float | None = None) -> None:
        b = self._bucket(model, time.time() if now is None else now)
        b.requests += 1
        if status >= 500 or status == 429:
            b.errors += 1
        b.prompt_tokens += prompt_tokens
        b.completion_tokens += completion_tokens
        if ttft_s is not None and len(b.ttfts) < MAX_TTFTS_PER_BUCKET:
            b.ttfts.append(ttft_s)
        if cache_hit is not None:
            b.cache_lookups += 1
            b.cache_hits += int(cache_hit)
        if prediction_error is not None:
            b.prediction_error_sum += prediction_error
            b.prediction_errors += 1

    def series(self, model: str, since_s: int = 120, now: float | None = None) -> list[Bucket]:
        now_s = int(time.time() if now is None else now)
        ring = self._models.get(model, ())
        return [b for b in ring if b.second > now_s - since_s]

    def models(self) -> list[str]:
        return list(self._models)

    def chart(self, model: str, *, span_s: int = DEFAULT_CHART_SPAN_S, step_s: int = DEFAULT_CHART_STEP_S,
              now: float | None = None) -> ChartSeries:
        """The last `span_s` seconds of `model` folded into `step_s`-wide points.

        Steps are aligned to multiples of `step_s` so a point keeps its value between polls;
        the newest step is partial and its rates are divided by the time elapsed in it.
        """
        if step_s < 1 or span_s < step_s:
            raise ValueError(f"need 1 <= step_s <= span_s, got step_s={step_s} span_s={span_s}")
        now_f = time.time() if now is None else now
        last_start = int(now_f) // step_s * step_s
        n = span_s // step_s
        first_start = last_start - (n - 1) * step_s
        steps = [_Step() for _ in range(n)]
        for b in self._models.get(model, ()):
            i = (b.second - first_start) // step_s
            if 0 <= i < n:
                steps[i].add(b)
        out = ChartSeries(t=[], requests_per_s=[], output_tokens_per_s=[], error_rate=[],
                          ttft_p50_s=[], ttft_p99_s=[], cache_reuse=[], cache_prediction_error=[])
        for i, s in enumerate(steps):
            start = first_start + i * step_s
            elapsed = min(float(step_s), max(now_f - start, 1.0))
            ttfts = sorted(s.ttfts)
            out.t.append(start)
            out.requests_per_s.append(round(s.requests / elapsed, 4))
            out.output_tokens_per_s.append(round(s.completion_tokens / elapsed, 3))
            out.error_rate.append(_ratio(s.errors, s.requests))
            out.ttft_p50_s.append(percentile(ttfts, 50))
            out.ttft_p99_s.append(percentile(ttfts, 99))
            out.cache_reuse.append(_ratio(s.cache_hits, s.cache_lookups))
            out.cache_prediction_error.append(_ratio(s.prediction_error_sum, s.prediction_errors))
        return out


@dataclass(slots=True)
class _Step:
    requests: int = 0
    errors: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    cache_lookups: int = 0
    prediction_error_sum: int = 0
    prediction_errors: int = 0
    ttfts: list[float] = field(default_factory=list)

    def add(self, b: Bucket) -> None:
        self.requests += b.requests
        self.errors += b.errors
        self.completion_tokens += b.completion_tokens
        self.cache_hits += b.cache_hits
        self.cache_lookups += b.cache_lookups
        self.prediction_error_sum += b.prediction_error_sum
        self.prediction_errors += b.prediction_errors
        self.ttfts.extend(b.ttfts)
