"""LiveStats.chart(): steps aligned to the clock, rates, percentiles, gaps as None."""

from __future__ import annotations

import pytest

from sglfleet.telemetry import LiveStats, percentile

NOW = 1_000_000.5  # unix seconds; steps of 5 s start at multiples of 5


def test_chart_folds_buckets_into_aligned_steps() -> None:
    stats = LiveStats()
    for i in range(10):  # 10 requests in [999_990, 999_995): 2 per second
        stats.record("m", status=200, ttft_s=0.1 * (i + 1), prompt_tokens=5, completion_tokens=4,
                     cache_hit=i % 2 == 0, now=999_990 + i / 2)
    stats.record("m", status=503, ttft_s=None, prompt_tokens=0, completion_tokens=0, now=NOW)
    c = stats.chart("m", span_s=30, step_s=5, now=NOW)
    assert len(c.t) == 6 and c.t[-1] == 1_000_000 and c.t[0] == 999_975
    i = c.t.index(999_990)
    assert c.requests_per_s[i] == 2.0
    assert c.output_tokens_per_s[i] == 8.0
    assert c.error_rate[i] == 0.0 and c.cache_reuse[i] == 0.5
    assert c.ttft_p50_s[i] == pytest.approx(0.5) and c.ttft_p99_s[i] == pytest.approx(1.0)
    # the newest step is partial: 1 request in its first (clamped to 1) second
    assert c.requests_per_s[-1] == 1.0 and c.error_rate[-1] == 1.0 and c.ttft_p50_s[-1] is None
    # no traffic: zero rate, but no ratio or percentile (a gap, not a zero)
    assert c.requests_per_s[0] == 0.0 and c.error_rate[0] is None and c.cache_reuse[0] is None


def test_chart_of_unknown_model_is_all_empty() -> None:
    c = LiveStats().chart("nobody", span_s=60, step_s=2, now=NOW)
    assert len(c.t) == 30 and set(c.requests_per_s) == {0.0} and set(c.ttft_p99_s) == {None}
    assert set(c.as_dict()) == {"t", "requests_per_s", "output_tokens_per_s", "error_rate",
                                "ttft_p50_s", "ttft_p99_s", "cache_reuse", "cache_prediction_error"}
    assert set(c.cache_prediction_error) == {None}


def test_prediction_error_is_the_mean_of_the_step() -> None:
    stats = LiveStats()
    for err in (0, 10, 20):
        stats.record("m", status=200, ttft_s=None, prompt_tokens=5, completion_tokens=1, prediction_error=err,
                     now=NOW - 0.5)
    stats.record("m", status=200, ttft_s=None, prompt_tokens=5, completion_tokens=1, now=NOW - 0.5)  # none reported
    c = stats.chart("m", span_s=10, step_s=2, now=NOW)
    assert c.cache_prediction_error[-1] == 10


def test_old_buckets_fall_out_of_the_window() -> None:
    stats = LiveStats(window_s=10)
    for s in range(30):
        stats.record("m", status=200, ttft_s=None, prompt_tokens=1, completion_tokens=1, now=NOW - 29 + s)
    assert len(stats.series("m", since_s=300, now=NOW)) == 10
    assert sum(stats.chart("m", span_s=60, step_s=10, now=NOW).requests_per_s) > 0


@pytest.mark.parametrize("step_s,span_s", [(0, 60), (61, 60)])
def test_chart_rejects_bad_steps(step_s: int, span_s: int) -> None:
    with pytest.raises(ValueError):
        LiveStats().chart("m", span_s=span_s, step_s=step_s)


def test_percentile_nearest_rank() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0 and percentile([], 50) is None
