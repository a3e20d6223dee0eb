"""The lock-free per-request families expose exactly what prometheus_client's Counter and
Histogram expose for the same updates (names, labels, buckets, _count, _sum, _created)."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics import disable_created_metrics, enable_created_metrics
from prometheus_client.parser import text_string_to_metric_families

from sglfleet.loop_metrics import LoopCounter, LoopHistogram

BUCKETS = (0.005, 0.01, 0.1, 1, 2.5, 60)


def _samples(registry: CollectorRegistry) -> list[tuple[str, tuple[tuple[str, str], ...], float | None]]:
    out = []
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:  # _created is a timestamp: only its presence is compared
            value = None if s.name.endswith("_created") else s.value
            out.append((s.name, tuple(sorted(s.labels.items())), value))
    return sorted(out, key=repr)


def test_same_exposition_as_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    c1 = LoopCounter("req", "requests", ["model", "status"], ours)
    c2 = Counter("req", "requests", ["model", "status"], registry=theirs)
    h1 = LoopHistogram("dur_seconds", "duration", ["model"], ours, buckets=BUCKETS)
    h2 = Histogram("dur_seconds", "duration", ["model"], buckets=BUCKETS, registry=theirs)
    rng = random.Random(7)
    values = [0.005, 0.01, 1.0, 60.0, 61.0, 0.0, -3.0, float("inf"),
              *(rng.uniform(0, 70) for _ in range(500))]
    for i, v in enumerate(values):
        model = ("a", "b")[i % 2]
        for c in (c1, c2):
            c.labels(model, 200 if i % 3 else 503).inc()
        for h in (h1, h2):
            h.labels(model).observe(v)
    c1.labels("a", 200).inc(2.5)
    c2.labels("a", 200).inc(2.5)
    c1.labels('quote " back \\ nl \n', 200).inc()
    c2.labels('quote " back \\ nl \n', 200).inc()
    assert _samples(ours) == _samples(theirs)


def test_nan_counts_in_the_sum_only_like_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    h1 = LoopHistogram("h", "h", ["m"], ours, buckets=BUCKETS)
    h2 = Histogram("h", "h", ["m"], buckets=BUCKETS, registry=theirs)
    for h in (h1, h2):
        h.labels("x").observe(float("nan"))
        h.labels("x").observe(0.5)
    # (NaN != NaN: compare the text)
    assert generate_latest(ours).split(b"h_created")[0] == generate_latest(theirs).split(b"h_created")[0]


def test_created_series_follow_prometheus_clients_switch() -> None:
    r = CollectorRegistry()
    LoopCounter("c", "c", ["m"], r).labels("x").inc()
    LoopHistogram("h", "h", ["m"], r, buckets=BUCKETS).labels("x").observe(1)
    assert b"c_created" in generate_latest(r) and b"h_created" in generate_latest(r)
    disable_created_metrics()
    try:
        text = generate_latest(r)
    finally:
        enable_created_metrics()
    assert b"_created" not in text and b"c_total" in text and b"h_count" in text


def test_unsorted_buckets_are_refused() -> None:
    with pytest.raises(ValueError):
        LoopHistogram("h", "h", [], CollectorRegistry(), buckets=(1, 0.5))


def test_counter_refuses_to_go_down_and_wrong_label_counts() -> None:
    c = LoopCounter("x", "x", ["a"], CollectorRegistry())
    with pytest.raises(ValueError):
        c.labels("v").inc(-1)
    with pytest.raises(ValueError):
        c.labels("v", "w")


def test_names_collide_like_prometheus_client() -> None:
    r = CollectorRegistry()
    LoopHistogram("d", "d", [], r, buckets=BUCKETS)
    with pytest.raises(ValueError):
        Counter("d_count", "d", registry=r)
