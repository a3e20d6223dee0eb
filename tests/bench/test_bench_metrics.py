"""Metric math on synthetic timelines with known answers."""

from __future__ import annotations

import dataclasses
import math
import random
from itertools import pairwise

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sglfleet.bench import metrics, report
from sglfleet.bench.client import RequestRecord, Target
from sglfleet.bench.loadgen import LoadShape, TargetRun, arrival_offsets
from sglfleet.bench.tokens import ApproxTokenizer
from sglfleet.bench.workloads import WorkloadSpec, build_workload, random_lengths, zipf_groups


def rec(start: float, chunks: list[float], out: int, *, ok: bool = True, index: int = 0,
        chunk_tokens: tuple[int, ...] | None = None, end: float | None = None,
        error: str | None = None, prompt: int = 10) -> RequestRecord:
    return RequestRecord(
        target="t", index=index, ok=ok, error=error, arrival_s=start, start_s=start,
        end_s=end if end is not None else (chunks[-1] if chunks else start + 1.0),
        chunk_s=tuple(chunks), chunk_chars=tuple(4 for _ in chunks), chunk_tokens=chunk_tokens,
        input_tokens=prompt, output_tokens=out, output_token_source="usage",
        requested_output_tokens=out,
    )


def timeline(start: float, ttft: float, itl: float, n: int) -> list[float]:
    return [start + ttft + i * itl for i in range(n)]


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert metrics.percentile(values, 50) == pytest.approx(2.5)
    assert metrics.percentile(values, 90) == pytest.approx(3.7)
    assert metrics.percentile(values, 99) == pytest.approx(3.97)
    assert metrics.percentile([5.0], 99) == 5.0


def test_stats_are_in_ms_with_population_std() -> None:
    s = metrics.stats_ms([0.1, 0.2, 0.3])
    assert (s.count, s.mean, s.median) == (3, pytest.approx(200), pytest.approx(200))
    assert s.max == pytest.approx(300)
    assert s.std == pytest.approx(math.sqrt(((100**2) * 2) / 3))
    assert s.p90 == pytest.approx(280)


def test_single_token_per_chunk_timeline() -> None:
    # 100 ms to first token, 20 ms per token, 5 tokens: E2E = 100 + 4*20 = 180 ms
    r = rec(10.0, timeline(10.0, 0.1, 0.02, 5), 5)
    s = metrics.summarize([r], duration_s=0.18, t0=10.0)
    assert s.ttft_ms.mean == pytest.approx(100)
    assert s.itl_ms.mean == pytest.approx(20) and s.itl_ms.count == 4
    assert s.tpot_ms.mean == pytest.approx(20)
    assert s.e2e_ms.mean == pytest.approx(180)
    assert s.output_throughput == pytest.approx(5 / 0.18)
    assert s.total_token_throughput == pytest.approx(15 / 0.18)
    assert s.concurrency == pytest.approx(1.0)
    assert s.tokens_per_chunk.mean == pytest.approx(1.0)


def test_several_tokens_per_chunk() -> None:
    # 3 chunks of 3 tokens, 60 ms apart: ITL is per chunk (60 ms), TPOT per token
    chunks = timeline(0.0, 0.1, 0.06, 3)
    r = rec(0.0, chunks, 9, chunk_tokens=(3, 3, 3))
    s = metrics.summarize([r], duration_s=0.22, t0=0.0)
    assert s.itl_ms.median == pytest.approx(60)
    assert s.tpot_ms.mean == pytest.approx(120 / 8)
    assert s.tokens_per_chunk.mean == pytest.approx(3.0)
    # without server-reported per-chunk counts, tokens are spread evenly over chunks
    s2 = metrics.summarize([rec(0.0, chunks, 9)], duration_s=0.22, t0=0.0)
    assert s2.tokens_per_chunk.mean == pytest.approx(3.0)
    assert s2.peak_output_tokens_per_s == pytest.approx(9)


def test_failed_requests_are_counted_but_not_measured() -> None:
    good = rec(0.0, timeline(0.0, 0.1, 0.02, 3), 3)
    bad1 = rec(0.0, [], 0, ok=False, error="HTTP 500: boom", end=0.05)
    bad2 = rec(0.0, [], 0, ok=False, error="HTTP 500: boom", end=0.05)
    bad3 = rec(0.0, [0.5], 1, ok=False, error="fake mid-stream failure")
    s = metrics.summarize([good, bad1, bad2, bad3], duration_s=1.0, t0=0.0)
    assert (s.completed, s.failed) == (1, 3)
    assert s.errors == {"HTTP 500: boom": 2, "fake mid-stream failure": 1}
    assert s.ttft_ms.count == 1 and s.ttft_ms.mean == pytest.approx(100)
    assert s.total_output_tokens == 3 and s.request_throughput == pytest.approx(1.0)


def test_no_successful_request() -> None:
    bad = rec(0.0, [], 0, ok=False, error="ClientConnectorError: refused", end=0.01)
    s = metrics.summarize([bad], duration_s=0.01, t0=0.0, slo_ms={"ttft": 100})
    assert (s.completed, s.failed) == (0, 1)
    assert s.request_throughput == 0 and s.output_throughput == 0 and s.request_goodput == 0
    assert s.ttft_ms.mean is None and s.ttft_ms.count == 0 and s.e2e_ms.p99 is None
    assert s.peak_output_tokens_per_s == 0 and s.peak_concurrent_requests == 0
    orjson.dumps(s.to_json())  # serialisable with nulls
    empty = metrics.summarize([], duration_s=0.0, t0=0.0)
    assert empty.completed == 0 and empty.output_token_source == "none"


def test_concurrency_peaks_and_goodput() -> None:
    a = rec(0.0, timeline(0.0, 0.1, 0.09, 10), 10, index=0)  # e2e 0.91 s, tpot 90 ms
    b = rec(0.5, timeline(0.5, 0.3, 0.01, 10), 10, index=1)  # e2e 0.39 s, ttft 300 ms
    c = rec(2.0, timeline(2.0, 0.05, 0.01, 5), 5, index=2)  # alone
    s = metrics.summarize([a, b, c], duration_s=2.1, t0=0.0, slo_ms={"ttft": 200, "tpot": 50})
    assert s.concurrency == pytest.approx((0.91 + 0.39 + 0.09) / 2.1)
    assert s.peak_concurrent_requests == 2
    assert s.request_goodput == pytest.approx(1 / 2.1)  # only c meets both SLOs
    assert s.peak_output_tokens_per_s == pytest.approx(20)  # a and b both land in second 0


def test_parse_slo() -> None:
    assert metrics.parse_slo("ttft=500ms, tpot=50ms,e2el=2s") == {
        "ttft": 500.0, "tpot": 50.0, "e2e": 2000.0}
    assert metrics.parse_slo("itl:30") == {"itl": 30.0}
    for bad in ("foo=1ms", "ttft", "ttft=fast", "ttft=-1ms"):
        with pytest.raises(ValueError):
            metrics.parse_slo(bad)


def test_json_round_trip_recomputes_the_same_summary() -> None:
    records = (rec(1.0, timeline(1.0, 0.1, 0.02, 4), 4, index=0),
               rec(1.1, timeline(1.1, 0.2, 0.03, 6), 6, index=1, chunk_tokens=(1,) * 6),
               rec(1.2, [], 0, ok=False, error="x", index=2))
    target = Target(label="t", base_url="http://127.0.0.1:1", model="m")
    run = TargetRun(target, records, 1.0, 2.0)
    summary = metrics.summarize(records, run.duration_s, run.t0)
    doc = report.build_json([report.RunReport("t", run, LoadShape(), summary)], {"k": 1})
    doc = orjson.loads(orjson.dumps(doc))
    for key in ("completed", "failed", "duration_s", "request_throughput", "output_throughput",
                "total_token_throughput"):
        assert key in doc["summary"]
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert set(doc["summary"][key]) >= {"mean", "median", "std", "p90", "p95", "p99"}
    loaded = report.load_records(doc)
    assert tuple(loaded) == records
    assert metrics.summarize(loaded, run.duration_s, run.t0) == summary


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=50),
       st.floats(min_value=0, max_value=100))
def test_percentile_is_bounded_and_monotonic(values: list[float], q: float) -> None:
    values.sort()
    p = metrics.percentile(values, q)
    assert values[0] - 1e-6 <= p <= values[-1] + 1e-6
    assert metrics.percentile(values, min(100.0, q + 1)) >= p - 1e-6


def test_arrivals_are_poisson_with_the_given_rate() -> None:
    offsets = arrival_offsets(4000, rate=10.0, burstiness=1.0, seed=1)
    gaps = [b - a for a, b in pairwise(offsets)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.1, rel=0.05)
    assert arrival_offsets(3, math.inf, 1.0, 0) == [0.0, 0.0, 0.0]
    regular = arrival_offsets(100, 10.0, burstiness=1000.0, seed=1)
    assert max(b - a for a, b in pairwise(regular)) < 0.12


def test_workload_lengths_follow_sglang_semantics() -> None:
    lens = random_lengths(random.Random(0), 100, 0.5, 500)
    assert min(lens) >= 50 and max(lens) <= 100 and len(set(lens)) > 10
    assert random_lengths(random.Random(0), 100, 1.0, 5) == [100] * 5
    tok = ApproxTokenizer()
    reqs = build_workload(WorkloadSpec(kind="random", num_requests=4, input_len=30,
                                       output_len=7), tok)
    assert [r.input_tokens for r in reqs] == [30] * 4 and {r.output_tokens for r in reqs} == {7}
    assert len({r.turns[0] for r in reqs}) == 4


def test_shared_prefix_groups() -> None:
    tok = ApproxTokenizer()
    spec = WorkloadSpec(kind="shared-prefix", num_requests=999, gsp_num_groups=3,
                        gsp_prompts_per_group=4, gsp_system_prompt_len=40,
                        gsp_question_len=8, output_len=5)
    reqs = build_workload(spec, tok)
    assert len(reqs) == 12  # groups x prompts per group; num_requests is ignored (SGLang)
    by_group: dict[int, set[str]] = {}
    for r in reqs:
        assert r.group is not None
        by_group.setdefault(r.group, set()).add(r.turns[0].split("\n\n")[0])
    assert sorted(by_group) == [0, 1, 2] and all(len(p) == 1 for p in by_group.values())
    assert [r.group for r in reqs] != sorted(r.group or 0 for r in reqs)  # shuffled
    ordered = build_workload(dataclasses.replace(spec, gsp_ordered=True), tok)
    assert [r.group for r in ordered] == sorted(r.group or 0 for r in ordered)
    skew = zipf_groups(random.Random(0), 5, 2000, alpha=1.5)
    assert skew.count(0) > skew.count(1) > skew.count(4)
