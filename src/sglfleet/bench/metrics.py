"""Metric math: pure functions from `RequestRecord`s to a `Summary`.

Definitions follow SGLang `bench_serving` / vLLM `bench serve` (see docs/bench.md):
only successful requests count; TTFT = first chunk with output text − send time;
ITL = gap between consecutive output chunks (one sample per chunk); TPOT =
(E2E − TTFT) / (output_tokens − 1) for output_tokens > 1; E2E = last event with
choices − send time; concurrency = Σ E2E / duration; throughputs divide by the run's
wall time. Percentiles interpolate linearly (numpy's default).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from sglfleet.bench.client import RequestRecord

SLO_KEYS = ("ttft", "tpot", "itl", "e2e")


@dataclass(frozen=True, slots=True)
class Stats:
    """Distribution of one metric, in milliseconds (None when there are no samples)."""

    count: int
    mean: float | None
    median: float | None
    std: float | None  # population standard deviation (numpy's default ddof=0)
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def stats_ms(values_s: Iterable[float]) -> Stats:
    """Summary statistics of durations given in seconds, reported in milliseconds."""
    ms = sorted(v * 1000.0 for v in values_s)
    if not ms:
        return Stats(0, None, None, None, None, None, None, None)
    return Stats(
        count=len(ms),
        mean=statistics.fmean(ms),
        median=statistics.median(ms),
        std=statistics.pstdev(ms),
        p90=percentile(ms, 90),
        p95=percentile(ms, 95),
        p99=percentile(ms, 99),
        max=ms[-1],
    )


def ttft_s(r: RequestRecord) -> float:
    return r.chunk_s[0] - r.start_s


def e2e_s(r: RequestRecord) -> float:
    return r.end_s - r.start_s


def tpot_s(r: RequestRecord) -> float | None:
    """(E2E − TTFT) / (output_tokens − 1); None when fewer than two output tokens."""
    if r.output_tokens <= 1:
        return None
    return (e2e_s(r) - ttft_s(r)) / (r.output_tokens - 1)


def itls_s(r: RequestRecord) -> list[float]:
    return [b - a for a, b in pairwise(r.chunk_s)]


def tokens_per_chunk(r: RequestRecord) -> list[float]:
    """Tokens in each output chunk: server-reported when known, else spread evenly."""
    if r.chunk_tokens is not None:
        return [float(n) for n in r.chunk_tokens]
    if not r.chunk_s:
        return []
    return [r.output_tokens / len(r.chunk_s)] * len(r.chunk_s)


def is_good(r: RequestRecord, slo_ms: dict[str, float]) -> bool:
    """Whether a successful request meets every SLO (values in ms; keys in SLO_KEYS)."""
    observed = {
        "ttft": ttft_s(r),
        "tpot": tpot_s(r) or 0.0,
        "itl": max(itls_s(r), default=0.0),
        "e2e": e2e_s(r),
    }
    return all(observed[key] * 1000.0 <= limit for key, limit in slo_ms.items())


def peak_output_tokens_per_s(records: Sequence[RequestRecord], t0: float) -> float:
    """Max tokens in any 1-second bucket after t0 (chunks weighted by their tokens)."""
    buckets: dict[int, float] = {}
    for r in records:
        for t, n in zip(r.chunk_s, tokens_per_chunk(r), strict=False):
            key = int((t - t0) // 1.0)
            buckets[key] = buckets.get(key, 0.0) + n
    return max(buckets.values(), default=0.0)


def peak_concurrent_requests(records: Sequence[RequestRecord]) -> int:
    """Most requests in flight at once, over [start, end) intervals."""
    events = sorted([(r.start_s, 1) for r in records] + [(r.end_s, -1) for r in records])
    peak = current = 0
    for _, delta in events:  # ties: -1 sorts before +1, so back-to-back does not overlap
        current += delta
        peak = max(peak, current)
    return peak


def output_timeline(
    records: Sequence[RequestRecord], t0: float, bucket_s: float = 1.0
) -> list[float]:
    """Output tokens per second in consecutive buckets after t0 (for plots)."""
    counts: dict[int, float] = {}
    for r in records:
        for t, n in zip(r.chunk_s, tokens_per_chunk(r), strict=False):
            key = int((t - t0) // bucket_s)
            counts[key] = counts.get(key, 0.0) + n
    if not counts:
        return []
    return [counts.get(i, 0.0) / bucket_s for i in range(max(counts) + 1)]


@dataclass(frozen=True, slots=True)
class Summary:
    completed: int
    failed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    input_token_source: str  # usage | tokenizer | approx | mixed
    output_token_source: str  # usage | tokenizer | approx | chunks | mixed | none
    request_throughput: float  # completed requests / s
    input_throughput: float  # tok/s
    output_throughput: float  # tok/s
    total_token_throughput: float  # tok/s
    concurrency: float  # Σ e2e / duration: average requests in flight
    peak_output_tokens_per_s: float
    peak_concurrent_requests: int
    request_goodput: float | None  # good requests / s; None without SLOs
    slo_attainment: float | None  # good requests / all requests (failed ones count as misses)
    token_goodput: float | None  # output tokens of good requests / s
    slo_ms: dict[str, float] | None
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats
    e2e_ms: Stats
    tokens_per_chunk: Stats  # not a duration: plain counts (mean, median, ...)
    errors: dict[str, int]  # error message (first 200 chars) -> count

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _source(values: Iterable[str]) -> str:
    kinds = set(values)
    if not kinds:
        return "none"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def summarize(
    records: Sequence[RequestRecord],
    duration_s: float,
    t0: float,
    slo_ms: dict[str, float] | None = None,
) -> Summary:
    """All summary figures for one run of one target. `t0`: perf_counter at run start."""
    ok = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    dur = duration_s if duration_s > 0 else float("nan")
    in_tokens = sum(r.usage_prompt_tokens or r.input_tokens for r in ok)
    in_source = _source("usage" if r.usage_prompt_tokens else "client" for r in ok)
    out_tokens = sum(r.output_tokens for r in ok)
    errors: dict[str, int] = {}
    for r in failed:
        key = (r.error or "unknown error")[:200]
        errors[key] = errors.get(key, 0) + 1
    good_records = [r for r in ok if is_good(r, slo_ms)] if slo_ms else None
    good = None if good_records is None else len(good_records)
    tpc = [n for r in ok for n in tokens_per_chunk(r)]

    def rate(x: float) -> float:
        return x / dur if ok else 0.0

    return Summary(
        completed=len(ok),
        failed=len(failed),
        duration_s=duration_s,
        total_input_tokens=in_tokens,
        total_output_tokens=out_tokens,
        input_token_source=in_source,
        output_token_source=_source(r.output_token_source for r in ok),
        request_throughput=rate(len(ok)),
        input_throughput=rate(in_tokens),
        output_throughput=rate(out_tokens),
        total_token_throughput=rate(in_tokens + out_tokens),
        concurrency=rate(sum(e2e_s(r) for r in ok)),
        peak_output_tokens_per_s=peak_output_tokens_per_s(ok, t0),
        peak_concurrent_requests=peak_concurrent_requests(ok),
        request_goodput=None if good is None else rate(good),
        slo_attainment=None if good is None or not records else good / len(records),
        token_goodput=None if good_records is None else rate(sum(r.output_tokens
                                                                 for r in good_records)),
        slo_ms=slo_ms,
        ttft_ms=stats_ms(ttft_s(r) for r in ok),
        tpot_ms=stats_ms(t for r in ok if (t := tpot_s(r)) is not None),
        itl_ms=stats_ms(gap for r in ok for gap in itls_s(r)),
        e2e_ms=stats_ms(e2e_s(r) for r in ok),
        tokens_per_chunk=_plain_stats(tpc),
        errors=errors,
    )


def _plain_stats(values: list[float]) -> Stats:
    return stats_ms(v / 1000.0 for v in values)  # stats_ms scales s -> ms; counts stay counts


def parse_slo(text: str) -> dict[str, float]:
    """`ttft=500ms,tpot=50ms,e2e=2s` -> {"ttft": 500.0, "tpot": 50.0, "e2e": 2000.0} (ms)."""
    slo: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            key, sep, value = part.partition(":")
        key = key.strip().lower().replace("e2el", "e2e")
        if key not in SLO_KEYS or not sep:
            raise ValueError(f"bad SLO {part!r}: use KEY=VALUE with KEY in {', '.join(SLO_KEYS)}")
        value = value.strip().lower()
        scale = 1.0
        if value.endswith("ms"):
            value = value[:-2]
        elif value.endswith("s"):
            value, scale = value[:-1], 1000.0
        try:
            number = float(value) * scale
        except ValueError:
            raise ValueError(f"bad SLO value in {part!r}: expected e.g. 500ms or 2s") from None
        if number < 0:
            raise ValueError(f"bad SLO {part!r}: must not be negative")
        slo[key] = number
    return slo
