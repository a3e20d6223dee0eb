"""Pure logic of bench v2: attainment math, knee detection, the max-goodput bisection,
confidence intervals and paired A/B significance, trace parsing, Prometheus parsing, SVG."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import pytest
from test_bench_metrics import rec, timeline

from sglfleet.bench import metrics, scrape, search, stats, svg
from sglfleet.bench.tokens import ApproxTokenizer
from sglfleet.bench.trace import build_trace_workload, load_trace

TOK = ApproxTokenizer()


def test_attainment_and_token_goodput_count_failures_as_misses() -> None:
    # E2E 180 ms (5 tokens) meets e2e<=200ms; 20 tokens (480 ms) does not; one failure.
    good = [rec(0.0, timeline(0.0, 0.1, 0.02, 5), 5, index=i) for i in range(3)]
    slow = [rec(0.0, timeline(0.0, 0.1, 0.02, 20), 20, index=3 + i) for i in range(2)]
    failed = rec(0.0, [], 0, ok=False, error="boom", index=9)
    s = metrics.summarize(good + slow + [failed], duration_s=2.0, t0=0.0, slo_ms={"e2e": 200})
    assert s.slo_attainment == pytest.approx(3 / 6)
    assert s.request_goodput == pytest.approx(3 / 2.0)
    assert s.token_goodput == pytest.approx(15 / 2.0)
    none = metrics.summarize(good, duration_s=2.0, t0=0.0)
    assert none.slo_attainment is None and none.token_goodput is None


def pt(x: float, thr: float, ttft: float) -> search.Point:
    return search.Point(x, thr, thr * 10, ttft)


def test_knee_of_a_server_with_capacity_six() -> None:
    # one request per second per slot, 6 slots: throughput min(c, 6), TTFT rises past 6
    points = [pt(1, 1, 100), pt(2, 2, 100), pt(4, 4, 101), pt(8, 6, 150), pt(16, 6, 400)]
    knee = search.find_knee("concurrency", points)
    assert knee is not None
    assert knee.value == 6 and knee.step == 8 and knee.saturated_at == 16
    assert knee.request_throughput == 6


def test_flat_throughput_without_rising_ttft_is_not_saturation() -> None:
    assert not search.saturated(pt(4, 4, 200), pt(8, 4.1, 190))
    assert search.saturated(pt(4, 4, 200), pt(8, 4.1, 260))
    assert not search.saturated(pt(4, 4, 200), pt(8, 4.3, 260))  # grew 7.5 %
    knee = search.find_knee("rate", [pt(1, 1, 10), pt(2, 2, 10)])
    assert knee is not None and knee.saturated_at is None and knee.value == 2


async def test_auto_sweep_stops_at_saturation() -> None:
    seen: list[float] = []

    async def measure(x: float, name: str) -> list:
        seen.append(x)
        thr = min(x, 5.0)
        return [_report(thr, 100 + 50 * max(0.0, x - 5))]

    res = await search.auto_sweep(search.AutoSweep("concurrency", 1, 4096), ["a"], measure)
    assert seen == [1, 2, 4, 8, 16]  # 8 -> 16 is flat with rising TTFT: stop
    knee = res.knees["a"]
    assert knee is not None and knee.value == 5


async def test_max_goodput_bisects_to_the_capacity() -> None:
    capacity = 7.3

    async def measure(rate: float, name: str):
        return _report(min(rate, capacity), 100, attainment=1.0 if rate <= capacity else 0.5)

    res = await search.max_goodput(measure, 1.0, 0.9, rel_tol=0.02)
    assert res.rate is not None and res.rate <= capacity
    assert res.rate == pytest.approx(capacity, rel=0.03)
    assert res.upper is not None and res.upper > capacity
    assert res.attainment == 1.0
    none = await search.max_goodput(lambda r, n: measure(r + 100, n), 1.0, 0.9)
    assert none.rate is None and [p.x for p in none.steps] == [1.0, 0.5, 0.25, 0.125]


def _report(thr: float, ttft: float, attainment: float | None = None):
    s = metrics.summarize([rec(0.0, timeline(0.0, ttft / 1000, 0.01, 3), 3)], 1.0, 0.0)
    s = dataclasses.replace(s, request_throughput=thr, output_throughput=thr * 3,
                            slo_attainment=attainment, request_goodput=thr, token_goodput=thr * 3)

    class R:
        summary = s
    return R()


def test_parse_auto() -> None:
    assert search.parse_auto("1,2,4", None, None) is None
    assert search.parse_auto("auto", 4, None) == search.AutoSweep("concurrency", 4, 4096)
    assert search.parse_auto("auto:rate", None, 0.5) == search.AutoSweep("rate", 0.5, float("inf"))
    assert search.parse_auto("auto:rate:2:16", None, None) == search.AutoSweep("rate", 2, 16)
    with pytest.raises(ValueError, match="auto:rate"):
        search.parse_auto("auto:speed", None, None)
    with pytest.raises(ValueError, match="START"):
        search.parse_auto("auto:rate:8:2", None, None)


def test_interval_matches_the_t_formula() -> None:
    values = [10.0, 12.0, 11.0, 13.0]
    iv = stats.interval(values)
    assert iv is not None
    half = 3.182 * statistics.stdev(values) / 2
    assert (iv.mean, iv.low, iv.high) == pytest.approx((11.5, 11.5 - half, 11.5 + half))
    assert stats.interval([1.0]) is None
    assert stats.t975(1) == 12.706 and stats.t975(1000) == 1.96


def test_paired_difference_is_significant_only_when_consistent() -> None:
    base = metrics.summarize([rec(0.0, timeline(0.0, 0.1, 0.02, 5), 5)], 1.0, 0.0)

    def with_ttft(ms: float) -> metrics.Summary:
        return dataclasses.replace(base, ttft_ms=dataclasses.replace(base.ttft_ms, median=ms))

    # B is 5 ms slower in every repeat, though both drift together: significant
    steady = [[with_ttft(100 + d), with_ttft(105 + d)] for d in (0, 20, -10, 7)]
    ab = stats.ab_result(["a", "b"], steady)
    d = ab.differences["ttft_ms.median"]["b"]
    assert d.significant and d.diff.mean == pytest.approx(5.0)
    # B is sometimes faster, sometimes slower: not significant
    noisy = [[with_ttft(100), with_ttft(100 + d)] for d in (5, -6, 4, -3)]
    assert not stats.ab_result(["a", "b"], noisy).differences["ttft_ms.median"]["b"].significant


def test_trace_rows_sharing_blocks_share_prompt_text(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"timestamp": 1000, "input_length": 20, "output_length": 3, "hash_ids": [0, 1, 2]}\n'
        '{"timestamp": 1500, "input_length": 18, "output_length": 4, "hash_ids": [0, 1, 3]}\n'
        '{"timestamp": 2500, "input_length": 12, "output_length": 5, "hash_ids": [4]}\n')
    reqs = build_trace_workload(load_trace(path), TOK, block_size=8)
    a, b, c = (r.turns[0].split() for r in reqs)
    assert a[:16] == b[:16] and a[16:] != b[16:18]  # blocks 0 and 1 shared, then different
    assert a[:8] != c[:8]
    assert [len(a), len(b), len(c)] == [20, 18, 12]  # cut, and padded past the last block
    assert [r.at_s for r in reqs] == [0.0, 0.5, 1.5]
    assert [r.output_tokens for r in reqs] == [3, 4, 5]
    path.write_text('{"timestamp": 0, "input_length": 5}\n')
    with pytest.raises(ValueError, match=r"t.jsonl:1: not a trace row"):
        load_trace(path)


def test_prometheus_parsing_sums_label_sets() -> None:
    text = ('# TYPE sglang:num_running_reqs gauge\n'
            'sglang:num_running_reqs{model_name="a"} 3\n'
            'sglang:num_running_reqs{model_name="b"} 2\n'
            '# TYPE sglfleet_requests counter\n'
            'sglfleet_requests_total{model="m",status="200"} 7\n'
            '# TYPE other gauge\nother 1\n')
    assert scrape.parse_metrics(text) == {"sglang:num_running_reqs": 5.0,
                                          "sglfleet_requests_total": 7.0}


def test_svg_charts_are_well_formed() -> None:
    import xml.etree.ElementTree as ET

    line = svg.line_chart([svg.Series("a", [1, 2, 4], [10, 20, 25], ["c=1", "c=2", "c=4"])],
                          "t", "x", "y", log_x=True)
    bars = svg.bar_chart([svg.Bar("a", 5, 4, 6), svg.Bar("b", 7, 6.5, 7.5, " *")], "t", "y")
    empty = svg.line_chart([], "t", "x", "y")
    for doc in (line, bars, empty):
        ET.fromstring(doc)
    assert "c=4" in line and "7 *" in bars and "no data" in empty
    assert svg.nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]


def test_credentials_are_masked_in_reports() -> None:
    from sglfleet.bench.report import redact_header, redact_spec, redact_url

    spec = redact_spec("gw=http://user:pw@127.0.0.1:8000/v1 Authorization:Bearer-sk1 x-route:a")
    assert "pw" not in spec and "sk1" not in spec
    assert spec == "gw=http://user:***@127.0.0.1:8000/v1 Authorization:*** x-route:a"
    assert redact_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert redact_header("X-API-Key", "k") == "***" and redact_header("x-fake-slots", "2") == "2"


def test_rate_steps_drop_the_client_concurrency_cap() -> None:
    from sglfleet.bench.loadgen import LoadShape
    from sglfleet.bench.session import _auto_step

    base = LoadShape(concurrency=2, num_requests=8)
    rate = _auto_step("rate", 4.0, base, 8)
    assert rate.shape.concurrency is None and rate.shape.request_rate == 4.0
    conc = _auto_step("concurrency", 16, base, 8)
    assert conc.shape.concurrency == 16 and conc.shape.num_requests == 32  # 2 x concurrency
