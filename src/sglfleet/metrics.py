"""Every Prometheus metric sglfleet exports, in one place (documented in docs/metrics.md).

Counters and histograms are updated once per request (never per chunk) through label
children bound once per model. Gauges (in-flight, health, breaker, queue, tree size, model
state, memory) are read from live objects at scrape time by a custom collector, so the hot
path never touches them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sglfleet.loop_metrics import LoopCounter, LoopHistogram

if TYPE_CHECKING:
    from sglfleet.routing.registry import Registry

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# |predicted - engine-reported| cached prompt tokens (a histogram with negative buckets has no _sum)
PREDICTION_ERROR_BUCKETS = (0, 1, 8, 32, 128, 512, 2048, 8192, 32768)
TTFT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(slots=True)
class ModelMetrics:
    """Label children for one model, bound once."""

    ttft: Any
    tokens_prompt: Any
    tokens_completion: Any
    retries: Any
    disconnects: Any
    cache_hits: Any
    cache_misses: Any
    panic_routes: Any


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # updated on every request: lock-free families (loop_metrics.py); the rest are rare
        self.requests = LoopCounter("sglfleet_requests", "Requests finished, by model, endpoint and HTTP status",
                                    ["model", "endpoint", "status"], r)
        self.latency = LoopHistogram("sglfleet_request_duration_seconds", "Request duration (to last byte)",
                                     ["model", "endpoint"], r, buckets=LATENCY_BUCKETS)
        self.ttft = LoopHistogram("sglfleet_time_to_first_token_seconds", "Streaming time to first content chunk",
                                  ["model"], r, buckets=TTFT_BUCKETS)
        self.tokens = LoopCounter("sglfleet_tokens", "Tokens by model and kind (prompt|completion)",
                                  ["model", "kind"], r)
        self.retries = Counter("sglfleet_retries", "Attempts retried on another worker", ["model"], registry=r)
        self.upstream_errors = Counter("sglfleet_upstream_errors", "Failed upstream attempts",
                                       ["model", "worker", "kind"], registry=r)
        self.disconnects = Counter("sglfleet_client_disconnects", "Clients gone before the response ended",
                                   ["model"], registry=r)
        self.cache_lookups = LoopCounter("sglfleet_cache_aware_lookups", "cache_aware routing decisions",
                                         ["model", "result"], r)
        self.cache_prediction_error = LoopHistogram(
            "sglfleet_cache_prediction_error_tokens",
            "|cached prompt tokens the routing policy predicted - those the engine reported|",
            ["model", "policy"], r, buckets=PREDICTION_ERROR_BUCKETS)
        self.route_decisions = Counter("sglfleet_route_decisions", "Task-route classifications",
                                       ["virtual_model", "route", "target"], registry=r)
        self.verdicts = LoopCounter("sglfleet_attempt_verdicts", "Attempts closed, by verdict (success, "
                                    "worker_fault, request_fault, client_gone, deadline): what each worker was "
                                    "blamed for", ["model", "worker", "verdict"], r)
        self.panic_routes = Counter("sglfleet_panic_routes", "Requests routed while every worker of the model was "
                                    "ejected (panic mode)", ["model"], registry=r)
        self.migrations = Counter("sglfleet_migrations", "Streams whose worker failed mid-stream, by outcome "
                                  "(migrated|refused|exhausted|failed)", ["model", "outcome"], registry=r)
        self.holds = Counter("sglfleet_holds", "Requests held while their model loaded, by outcome "
                             "(served|timeout|failed|gone)", ["model", "outcome"], registry=r)
        self.hold_time = Histogram("sglfleet_hold_seconds", "Time a request was held for its model to load",
                                   ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.restarts = Counter("sglfleet_rolling_restarts", "Rolling restarts by outcome (done|failed)",
                                ["model", "outcome"], registry=r)
        self._by_model: dict[str, ModelMetrics] = {}
        self._verdict_children: dict[tuple[str, str, str], Any] = {}
        self._prediction_children: dict[tuple[str, str], Any] = {}
        self._requests_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[tuple[str, str], Any] = {}

    def model(self, name: str) -> ModelMetrics:
        m = self._by_model.get(name)
        if m is None:
            m = ModelMetrics(
                ttft=self.ttft.labels(name),
                tokens_prompt=self.tokens.labels(name, "prompt"),
                tokens_completion=self.tokens.labels(name, "completion"),
                retries=self.retries.labels(name),
                disconnects=self.disconnects.labels(name),
                cache_hits=self.cache_lookups.labels(name, "hit"),
                cache_misses=self.cache_lookups.labels(name, "miss"),
                panic_routes=self.panic_routes.labels(name),
            )
            self._by_model[name] = m
        return m

    def observe_request(self, model: str, endpoint: str, status: int, duration_s: float) -> None:
        key = (model, endpoint, status)
        child = self._requests_children.get(key)
        if child is None:
            child = self._requests_children[key] = self.requests.labels(model, endpoint, str(status))
        child.inc()
        lkey = (model, endpoint)
        lat = self._latency_children.get(lkey)
        if lat is None:
            lat = self._latency_children[lkey] = self.latency.labels(model, endpoint)
        lat.observe(duration_s)

    def observe_verdict(self, model: str, worker: str, verdict: str) -> None:
        key = (model, worker, verdict)
        child = self._verdict_children.get(key)
        if child is None:
            child = self._verdict_children[key] = self.verdicts.labels(model, worker, verdict)
        child.inc()

    def observe_cache_prediction(self, model: str, policy: str, predicted_tokens: int | None, matched_chars: int,
                                 text_chars: int, prompt_tokens: int, cached_tokens: int | None) -> int | None:
        """One request's prediction error (returned too), when the engine reported its cached tokens."""
        if cached_tokens is None or prompt_tokens <= 0:
            return None
        predicted = predicted_cached_tokens(predicted_tokens, matched_chars, text_chars, prompt_tokens)
        error = abs(predicted - cached_tokens)
        key = (model, policy)
        child = self._prediction_children.get(key)
        if child is None:
            child = self._prediction_children[key] = self.cache_prediction_error.labels(model, policy)
        child.observe(error)
        return error

    def add_live_collector(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.registry.register(_LiveCollector(collect))


def predicted_cached_tokens(predicted_tokens: int | None, matched_chars: int, text_chars: int,
                            prompt_tokens: int) -> int:
    """The cached prompt tokens a decision implied: a token-level policy (kv_events) says so;
    a character-tree policy (cache_aware) predicts the matched share of the prompt; a policy
    that models no cache predicts none."""
    if predicted_tokens is not None:
        return min(max(predicted_tokens, 0), prompt_tokens)
    if matched_chars > 0 and text_chars > 0:
        return round(prompt_tokens * min(matched_chars / text_chars, 1.0))
    return 0


class _LiveCollector(Collector):
    def __init__(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self._fn = fn

    def collect(self) -> Iterable[Metric]:
        return self._fn()

    def describe(self) -> Iterable[Metric]:
        return []


def _tree_chars(pool: Any) -> int | None:
    """Characters in the pool's cache-aware prefix tree (a session policy keeps one in its fallback)."""
    for policy in pool.policies:
        tree = getattr(policy, "tree", None) or getattr(getattr(policy, "fallback", None), "tree", None)
        if tree is not None:
            return int(tree.total_chars)
    return None


def registry_gauges(registry: Registry) -> Iterable[Metric]:
    """Gauges computed from the live registry at scrape time."""
    inflight = GaugeMetricFamily("sglfleet_worker_inflight", "Requests in flight on a worker",
                                 labels=["model", "worker", "url"])
    healthy = GaugeMetricFamily("sglfleet_worker_healthy", "1 if the worker passes health checks",
                                labels=["model", "worker", "url"])
    eligible = GaugeMetricFamily("sglfleet_worker_eligible", "1 if the router may pick the worker now",
                                 labels=["model", "worker", "url"])
    breaker = GaugeMetricFamily("sglfleet_worker_breaker_state", "0 closed, 1 open, 2 half-open",
                                labels=["model", "worker", "url"])
    stalled = GaugeMetricFamily("sglfleet_worker_stalled", "1 while the worker misses its heartbeat (hung engine)",
                                labels=["model", "worker", "url"])
    processed = GaugeMetricFamily("sglfleet_worker_processed", "Requests dispatched to the worker",
                                  labels=["model", "worker", "url"])
    queue = GaugeMetricFamily("sglfleet_queue_depth", "Requests waiting for a slot", labels=["model"])
    active = GaugeMetricFamily("sglfleet_model_active_requests", "Requests holding a slot", labels=["model"])
    tree = GaugeMetricFamily("sglfleet_prefix_tree_chars", "Characters in the cache-aware prefix tree",
                             labels=["model"])
    kv_usable = GaugeMetricFamily("sglfleet_kv_events_worker_usable",
                                  "kv_events: 1 if the worker's KV events are live, 0 if it falls back to cache_aware",
                                  labels=["model", "worker"])
    kv_blocks = GaugeMetricFamily("sglfleet_kv_events_worker_blocks", "kv_events: KV blocks the worker reports cached",
                                  labels=["model", "worker"])
    kv_fallback = CounterMetricFamily("sglfleet_kv_events_fallback_decisions",
                                      "kv_events decisions that scored a stale worker from the cache_aware tree",
                                      labels=["model"])
    for pool in registry:
        for policy in pool.policies:
            kv_status = getattr(policy, "status", None)
            if callable(kv_status):
                for wid, usable, blocks in kv_status():
                    kv_usable.add_metric([pool.name, wid], 1.0 if usable else 0.0)
                    kv_blocks.add_metric([pool.name, wid], blocks)
                kv_fallback.add_metric([pool.name], getattr(policy, "fallback_decisions", 0))
        for w in pool.workers:
            lab = [pool.name, w.id, w.url]
            inflight.add_metric(lab, w.inflight)
            healthy.add_metric(lab, 1.0 if w.healthy else 0.0)
            eligible.add_metric(lab, 1.0 if w.eligible else 0.0)
            breaker.add_metric(lab, float(w.breaker.state))
            stalled.add_metric(lab, 1.0 if w.stalled else 0.0)
            processed.add_metric(lab, w.processed)
        queue.add_metric([pool.name], pool.limiter.queued)
        active.add_metric([pool.name], pool.limiter.active)
        chars = _tree_chars(pool)
        if chars is not None:
            tree.add_metric([pool.name], chars)
    return [inflight, healthy, eligible, breaker, stalled, processed, queue, active, tree, kv_usable, kv_blocks,
            kv_fallback]


def memory_gauges(memory: Any, cfg: Any) -> list[Metric]:
    """Memory budget, use and PSI at scrape time (cheap: no process-tree walk here).
    `memory` is the supervisor's MemoryOrchestrator, `cfg` the gateway's MemoryConfig."""
    b = memory.budget
    budget = GaugeMetricFamily("sglfleet_memory_budget_bytes", "Memory budget for managed engines",
                               labels=["device", "limit"])
    budget.add_metric([b.device, "total"], b.total_bytes)
    budget.add_metric([b.device, "soft"], b.soft_bytes(cfg))
    budget.add_metric([b.device, "hard"], b.hard_bytes(cfg))
    used = GaugeMetricFamily("sglfleet_memory_used_bytes", "Memory held by managed engines (measured, "
                             "else estimated)", labels=["device"])
    used.add_metric([b.device], memory.used())
    psi = GaugeMetricFamily("sglfleet_memory_pressure", "PSI memory stall percent (/proc/pressure/memory)",
                            labels=["kind", "window"])
    p = memory.pressure()
    if p.available:
        for kind, window, v in (("some", "avg10", p.some_avg10), ("full", "avg10", p.full_avg10),
                                ("some", "avg60", p.some_avg60), ("full", "avg60", p.full_avg60)):
            psi.add_metric([kind, window], v)
    return [budget, used, psi]
