"""Worker-selection policies. Every policy follows one protocol and sees the same inputs.

Load is the router's in-flight count, incremented when the worker is picked (dispatch time),
never when bytes start flowing: late counting is what sent all traffic to one worker in
SGLang's router (gRPC, PD prefill) and vLLM's router.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Sequence
from typing import Protocol

from sglfleet.config import CacheAwareConfig
from sglfleet.core.route import Decision, RouteContext
from sglfleet.core.worker import Worker
from sglfleet.routing.prefix_tree import PrefixTree

__all__ = ["CacheAware", "Decision", "Policy", "RouteContext", "candidates", "least_loaded"]


class Policy(Protocol):
    name: str

    def select(self, workers: Sequence[Worker], ctx: RouteContext) -> Decision | None: ...

    def forget(self, worker: Worker) -> None: ...


def candidates(workers: Sequence[Worker], ctx: RouteContext) -> list[Worker]:
    """The eligible workers; when every worker is ejected (breaker open, health failing), all
    routable ones instead (panic mode, as Envoy below its panic threshold): failing some
    requests beats failing all of them. Stalled, draining and not-ready workers never qualify."""
    ws = [w for w in workers if w.eligible and w.id not in ctx.exclude]
    if not ws and not any(w.eligible for w in workers):
        ws = [w for w in workers if w.routable and w.id not in ctx.exclude]
        ctx.panic = bool(ws)
    return ws


def least_loaded(ws: Sequence[Worker]) -> Worker:
    # ties by requests processed so far, so an idle cluster still spreads (SGLang PR #27547)
    return min(ws, key=lambda w: (w.inflight, w.processed))


class _Stateless:
    name = ""

    def forget(self, worker: Worker) -> None:
        pass


class RoundRobin(_Stateless):
    name = "round_robin"

    def __init__(self) -> None:
        self._counter = itertools.count()

    def select(self, workers: Sequence[Worker], ctx: RouteContext) -> Decision | None:
        ws = candidates(workers, ctx)
        return Decision(ws[next(self._counter) % len(ws)]) if ws else None


class Random(_Stateless):
    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def select(self, workers: Sequence[Worker], ctx: RouteContext) -> Decision | None:
        ws = candidates(workers, ctx)
        return Decision(self._rng.choice(ws)) if ws else None


class LeastLoad(_Stateless):
    name = "least_load"

    def select(self, workers: Sequence[Worker], ctx: RouteContext) -> Decision | None:
        ws = candidates(workers, ctx)
        return Decision(least_loaded(ws)) if ws else None


class PowerOfTwo(_Stateless):
    name = "power_of_two"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def select(self, workers: Sequence[Worker], ctx: RouteContext) -> Decision | None:
        ws = candidates(workers, ctx)
        if len(ws) <= 2:
            return Decision(least_loaded(ws)) if ws else None
        return Decision(least_loaded(self._rng.sample(ws, 2)))


class CacheAware:
    """SGLang router 0.3.2 cache-aware routing over a per-model prefix tree.

    1. imbalanced (max-min > abs AND max > rel*min over eligible workers) -> least loaded;
    2. else match the request text; if matched/len > cache_threshold -> the least loaded
       eligible worker among those holding the deepest matched prefix;
    3. else least loaded. The chosen worker is recorded in the tree for this text.
    """

    name = "cache_aware"

    def __init__(self, cfg: CacheAwareConfig | None = None) -> None:
        self.cfg = cfg or CacheAwareConfig()
        self.tree = PrefixTree(self.cfg.max_tree_chars, self.cfg.max_chars_per_worker)
        self.hits = 0
        self.misses = 0
        self.balance_events = 0

    def select(self, workers: Sequence[Worker], ctx: RouteContext) -> Decision | None:
        ws = candidates(workers, ctx)
        if not ws:
            return None
        decision = self._choose(ws, ctx.text)
        self.tree.insert(ctx.text, decision.worker.id)
        return decision

    def _choose(self, ws: list[Worker], text: str) -> Decision:
        lo = min(w.inflight for w in ws)
        hi = max(w.inflight for w in ws)
        cfg = self.cfg
        if hi - lo > cfg.balance_abs_threshold and hi > lo * cfg.balance_rel_threshold:
            self.balance_events += 1
            return Decision(least_loaded(ws), cache_hit=None)
        if text:
            by_id = {w.id: w for w in ws}
            for step in reversed(self.tree.match(text)):
                holders = [by_id[t] for t in step.tenants if t in by_id]
                if holders:
                    if step.matched_chars / len(text) > cfg.cache_threshold:
                        holder = least_loaded(holders)
                        if cfg.affinity_slack is not None and holder.inflight - lo > cfg.affinity_slack:
                            self.balance_events += 1
                            return Decision(least_loaded(ws), cache_hit=None)
                        self.hits += 1
                        return Decision(holder, True, step.matched_chars)
                    break
        self.misses += 1
        return Decision(least_loaded(ws), cache_hit=False)

    def forget(self, worker: Worker) -> None:
        self.tree.remove_tenant(worker.id)


class Session:
    """Sticky routing on a key header via rendezvous hashing: when a worker leaves, only its
    keys move. Requests without a key fall back to cache_aware."""

    name = "session"

    def __init__(self, cfg: CacheAwareConfig | None = None) -> None:
        self.fallback = CacheAware(cfg)

    def select(self, workers: Sequence[Worker], ctx: RouteContext) -> Decision | None:
        if not ctx.routing_key:
            return self.fallback.select(workers, ctx)
        ws = candidates(workers, ctx)
        if not ws:
            return None
        key = ctx.routing_key.encode()

        def score(w: Worker) -> bytes:
            return hashlib.blake2b(key + b"\x00" + w.url.encode(), digest_size=8).digest()

        return Decision(max(ws, key=score))

    def forget(self, worker: Worker) -> None:
        self.fallback.forget(worker)
