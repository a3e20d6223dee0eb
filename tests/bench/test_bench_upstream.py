"""The load generator and client against a deterministic upstream with known timing."""

from __future__ import annotations

import math

import pytest

from sglfleet.bench import metrics
from sglfleet.bench.client import Target
from sglfleet.bench.loadgen import LoadShape, run_load
from sglfleet.bench.tokens import ApproxTokenizer
from sglfleet.bench.workloads import BenchRequest, WorkloadSpec, build_workload

TOK = ApproxTokenizer()


def target(url: str, label: str = "fake", endpoint: str = "chat", **headers: str) -> Target:
    return Target(label=label, base_url=url + "/v1", model="fake-model", endpoint=endpoint,
                  headers=tuple((k.replace("_", "-"), v) for k, v in headers.items()))


def workload(n: int, out: int, kind: str = "random", **kw: object) -> list[BenchRequest]:
    spec = WorkloadSpec(kind=kind, num_requests=n, input_len=16, output_len=out,
                        **kw)  # type: ignore[arg-type]
    return build_workload(spec, TOK)


def _timing_errors(s: metrics.Summary) -> list[str]:
    """Deviations from the upstream's known timing beyond the tolerances (empty = measured right)."""
    checks = [("ttft median", s.ttft_ms.median, 100, 0.04), ("ttft p99", s.ttft_ms.p99, 100, 0.10),
              ("itl median", s.itl_ms.median, 20, 0.04), ("tpot mean", s.tpot_ms.mean, 20, 0.04),
              ("e2e median", s.e2e_ms.median, 480, 0.04), ("duration", s.duration_s, 0.96, 0.10),
              ("concurrency", s.concurrency, 4, 0.10)]
    return [f"{name} {got:.3f} vs {want}" for name, got, want, rel in checks if got != pytest.approx(want, rel=rel)]


async def test_known_timing_is_measured_within_a_few_percent(fake_url: str) -> None:
    # upstream: 100 ms to first token, then 20 ms per token; 20 tokens -> E2E 480 ms.
    # Scheduling noise on a shared 2-core machine only ever adds delay, so a correct
    # measurement passes within three tries while a wrong one fails all of them.
    failures = []
    for _ in range(3):
        runs = await run_load([target(fake_url)], workload(8, 20),
                              LoadShape(concurrency=4, warmup=1), count_tokens=TOK.count)
        run = runs[0]
        s = metrics.summarize(run.records, run.duration_s, run.t0)
        assert (s.completed, s.failed) == (8, 0)
        assert s.output_token_source == "usage" and s.total_output_tokens == 160
        assert s.peak_concurrent_requests == 4
        assert s.tokens_per_chunk.mean == pytest.approx(1.0)
        errors = _timing_errors(s)
        if not errors:
            return
        failures.append(errors)
    pytest.fail(f"timing off in all 3 tries: {failures}")


async def test_multi_token_chunks(fake_url: str) -> None:
    # 3 tokens per event every 60 ms: ITL per chunk 60 ms, TPOT still 20 ms per token
    # (up to three tries: scheduling noise on a loaded machine only adds delay)
    t = target(fake_url, x_fake_tokens_per_chunk="3")
    failures = []
    for _ in range(3):
        runs = await run_load([t], workload(2, 12), LoadShape(concurrency=2, warmup=0))
        s = metrics.summarize(runs[0].records, runs[0].duration_s, runs[0].t0)
        assert s.tokens_per_chunk.mean == pytest.approx(3.0)
        checks = [("ttft median", s.ttft_ms.median, 140),  # first chunk carries tokens 0-2
                  ("itl median", s.itl_ms.median, 60),
                  ("tpot mean", s.tpot_ms.mean, (140 + 3 * 60 - 140) / 11)]
        errors = [(name, got, want) for name, got, want in checks
                  if got != pytest.approx(want, rel=0.05)]
        if not errors:
            return
        failures.append(errors)
    pytest.fail(f"timing off in all 3 tries: {failures}")


async def test_failures_are_counted_with_their_messages(fake_url: str) -> None:
    good = target(fake_url, "good")
    http_500 = target(fake_url, "http500", x_fake_status="500")
    mid = target(fake_url, "midstream", x_fake_error_after="2")
    refused = Target(label="refused", base_url="http://127.0.0.1:9", model="m")
    runs = await run_load([good, http_500, mid, refused], workload(2, 4),
                          LoadShape(concurrency=2, warmup=0))
    by = {r.target.label: metrics.summarize(r.records, r.duration_s, r.t0) for r in runs}
    assert (by["good"].completed, by["good"].failed) == (2, 0)
    assert by["http500"].failed == 2 and "HTTP 500" in next(iter(by["http500"].errors))
    assert by["midstream"].errors == {"fake mid-stream failure": 2}
    assert by["refused"].completed == 0 and by["refused"].failed == 2
    assert by["refused"].ttft_ms.mean is None


async def test_no_usage_falls_back_to_client_counting(fake_url: str) -> None:
    runs = await run_load([target(fake_url, x_fake_no_usage="1")], workload(1, 5),
                          LoadShape(warmup=0), count_tokens=TOK.count, count_source="approx")
    r = runs[0].records[0]
    assert r.ok and r.output_token_source == "approx" and r.output_tokens == 5
    runs = await run_load([target(fake_url, x_fake_no_usage="1")], workload(1, 5),
                          LoadShape(warmup=0))
    assert runs[0].records[0].output_token_source == "chunks"


async def test_completions_endpoint_and_non_streaming(fake_url: str) -> None:
    runs = await run_load([target(fake_url, endpoint="completions")], workload(1, 6),
                          LoadShape(warmup=0))
    r = runs[0].records[0]
    assert r.ok and r.output_tokens == 6 and len(r.chunk_s) == 6
    flat = Target(label="ns", base_url=fake_url, model="m", stream=False)
    runs = await run_load([flat], workload(1, 6), LoadShape(warmup=0))
    r = runs[0].records[0]
    assert r.ok and r.output_tokens == 6 and len(r.chunk_s) == 1
    assert metrics.e2e_s(r) == pytest.approx(0.2, rel=0.1)


async def test_request_rate_and_duration_stop(fake_url: str) -> None:
    t = target(fake_url, x_fake_ttft_ms="10", x_fake_itl_ms="5")
    shape = LoadShape(request_rate=40.0, duration_s=0.5, warmup=0, seed=3)
    runs = await run_load([t], workload(4, 3), shape)
    n = len(runs[0].records)
    assert 8 <= n <= 40  # ~20 Poisson arrivals in 0.5 s; the 4 prompts are cycled
    assert len({r.index for r in runs[0].records}) == n
    assert all(r.ok for r in runs[0].records)
    assert not math.isinf(shape.request_rate)


async def test_compare_interleaves_targets(fake_url: str) -> None:
    fast = target(fake_url, "fast", x_fake_itl_ms="10")
    slow = target(fake_url, "slow", x_fake_itl_ms="30")
    runs = await run_load([fast, slow], workload(4, 10), LoadShape(concurrency=2, warmup=1))
    fs, ss = (metrics.summarize(r.records, r.duration_s, r.t0) for r in runs)
    assert fs.tpot_ms.mean == pytest.approx(10, rel=0.1)
    assert ss.tpot_ms.mean == pytest.approx(30, rel=0.1)
    # both targets ran in the same window, not one after the other
    first_slow = min(r.start_s for r in runs[1].records)
    last_fast = max(r.end_s for r in runs[0].records)
    assert first_slow < last_fast


async def test_multi_turn_history_grows(fake_url: str) -> None:
    reqs = workload(2, 4, kind="multi-turn", num_turns=3)
    runs = await run_load([target(fake_url, x_fake_ttft_ms="5", x_fake_itl_ms="2")], reqs,
                          LoadShape(concurrency=2, warmup=0))
    records = sorted(runs[0].records, key=lambda r: (r.index, r.turn))
    assert [(r.index, r.turn) for r in records] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    prompts = [r.usage_prompt_tokens or 0 for r in records[:3]]
    assert prompts[0] < prompts[1] < prompts[2]  # each turn resends the whole history
