"""Prometheus counters and histograms for the per-request metrics, updated without locks.

prometheus_client guards every value with a threading.Lock and finds a histogram's bucket
with a Python loop: about 1 µs per update, eight updates per request. These families are
updated only from the gateway's event loop (one thread), so a child is plain attributes and
a bucket is found by bisection; the exposition at scrape time is prometheus_client's own
(`CounterMetricFamily`, `HistogramMetricFamily`), same names, labels, `_total`, `_created`,
buckets and `_sum`/`_count` as its Counter and Histogram.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


def _created() -> bool:
    """prometheus_client's switch for `_created` series (PROMETHEUS_DISABLE_CREATED_SERIES,
    `disable_created_metrics()`), read at scrape time like its own metrics do."""
    return bool(prometheus_metrics._use_created)


class CounterChild:
    __slots__ = ("value", "created")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum", "created")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        if value == value:  # (NaN: in the sum only, as prometheus_client does)
            self.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.sum += value


Child = TypeVar("Child", CounterChild, HistogramChild)


class _Family(Collector, Generic[Child]):
    def __init__(self, name: str, doc: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Child] = {}
        registry.register(self)

    def labels(self, *values: object) -> Child:
        key = tuple(str(v) for v in values)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new()
        return child

    def _new(self) -> Child:
        raise NotImplementedError

    def collect(self) -> Iterable[Metric]:
        raise NotImplementedError

    def describe(self) -> Iterable[Metric]:
        return self.collect()


class LoopCounter(_Family[CounterChild]):
    """A labelled counter (`<name>_total`, `<name>_created`) updated from one thread."""

    def _new(self) -> CounterChild:
        return CounterChild()

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for key, child in list(self._children.items()):
            family.add_metric(key, child.value, created=child.created if _created() else None)
        yield family


class LoopHistogram(_Family[HistogramChild]):
    """A labelled histogram (`_bucket`, `_count`, `_sum`, `_created`) updated from one thread."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str], registry: CollectorRegistry, *,
                 buckets: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in buckets if b != float("inf"))
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError(f"{name}: buckets must be in increasing order")
        self._les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        super().__init__(name, doc, labelnames, registry)

    def _new(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for key, child in list(self._children.items()):
            running, buckets = 0, []
            for le, count in zip(self._les, list(child.counts), strict=True):
                running += count
                buckets.append((le, float(running)))
            family.add_metric(key, buckets, child.sum)
            if _created():
                labels = dict(zip(self.labelnames, key, strict=True))
                family.samples.append(Sample(self.name + "_created", labels, child.created))
        yield family
