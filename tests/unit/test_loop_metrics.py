"""The lock-free per-request families expose exactly what prometheus_client's Counter and
Histogram expose for the same updates (names, labels, buckets, _count, _sum, _created)."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
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
    values = [0.005, 0.01, 1.0, 60.0, 61.0, 0.0, *(rng.uniform(0, 70) for _ in range(500))]
    for i, v in enumerate(values):
        model = ("a", "b")[i % 2]
        for c in (c1, c2):
            c.labels(model, 200 if i % 3 else 503).inc()
        for h in (h1, h2):
            h.labels(model).observe(v)
    c1.labels("a", 200).inc(2.5)
    c2.labels("a", 200).inc(2.5)
    assert _samples(ours) == _samples(theirs)


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
