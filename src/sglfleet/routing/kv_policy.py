"""`kv_events`: route on what the engines report they cache (their KV-cache events).

Per request, bounded work: tokenize once (the engine's tokenizer), compute the chained keys
of the prompt's full blocks once, then one walk over the block index (one lookup per block
until no worker holds the next one) and one over the blocks this gateway has in flight.

Each eligible worker w gets a cost, lowest wins (the shape of NVIDIA Dynamo's KV router
cost, with the load term measured in prefill work):

    cost(w) = overlap_weight x blocks w must prefill + prefill blocks w has in flight

- blocks to prefill = the prompt's blocks minus the leading blocks w holds, where "holds"
  is the longer of what its events say it caches and what this gateway sent it and is still
  in flight (a prefix that is being prefilled there right now will be cached by the time the
  next request is admitted);
- prefill blocks in flight = the sum of that same number for the requests dispatched to w
  and not finished, counted at dispatch: the prefill work queued ahead of this request.
  Completion is read from the worker's in-flight count: when it drops, the oldest requests
  of w are taken as finished (an estimate; the count itself is exact).
  Dynamo counts the in-flight requests' KV blocks (decode memory) instead; on a shared-prefix
  workload that makes a holder of a hot prefix look as busy as a full prefill and spreads
  every group (measured in docs/routing.md).
- `balance_ratio` (off by default): a worker with more than balance_ratio x the mean
  in-flight count + 1 is only chosen when every worker is.
- ties: fewer requests in flight, then fewer cached blocks (new prefixes go where eviction
  hurts least), then fewer processed.

A worker whose event stream is not usable (not connected yet, or requests sent more than
`stale_after_s` ago produced no event) is scored from `cache_aware`'s prefix tree instead
(matched characters / routing text x blocks), and each such decision counts in
`sglfleet_kv_events_fallback_decisions_total`. The tree learns every decision, so it is warm
when needed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sglfleet.config import CacheAwareConfig
from sglfleet.core.redact import split_credentials
from sglfleet.core.worker import Worker
from sglfleet.routing.kv_index import BlockIndex, block_keys
from sglfleet.routing.kv_subscriber import Endpoints, Subscriber, discover
from sglfleet.routing.kv_tokenizer import RequestTokenizer, load_tokenizer
from sglfleet.routing.policies import CacheAware, Decision, RouteContext, candidates

if TYPE_CHECKING:
    from sglfleet.config import KvEventsConfig


class KvEventsPolicy:
    name = "kv_events"

    def __init__(self, cfg: KvEventsConfig, cache_cfg: CacheAwareConfig | None = None, *,
                 urls: Sequence[str] = (),
                 tokenizer: RequestTokenizer | None = None) -> None:
        self.cfg = cfg
        if tokenizer is None:
            if not cfg.tokenizer:
                raise ValueError("policy kv_events needs kv_events.tokenizer (a model directory or 'sim')")
            tokenizer = load_tokenizer(cfg.tokenizer)
        self.tokenizer = tokenizer
        self.block_size: int | None = cfg.block_size
        self.index = BlockIndex()
        self.fallback = CacheAware(cache_cfg)
        self.tree = self.fallback.tree  # the live-stats reader looks for `tree`
        self._configured: dict[str, Endpoints] = {}
        for i, url in enumerate(urls):
            if i < len(cfg.endpoints):
                replay = cfg.replay_endpoints[i] if i < len(cfg.replay_endpoints) else None
                clean = split_credentials(url.rstrip("/"))[0]
                self._configured[clean] = Endpoints(cfg.endpoints[i], replay, cfg.topic, cfg.block_size)
        self.subscribers: dict[str, Subscriber] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._active: dict[str, deque[tuple[list[int], int]]] = {}  # (block keys, prefill blocks)
        self._active_refs: dict[str, Counter[int]] = {}
        self._queued: dict[str, int] = {}  # prefill blocks in flight per worker
        self._sent_at: dict[str, float] = {}
        self.decisions = 0
        self.fallback_decisions = 0

    # -- subscriptions ------------------------------------------------------------------
    def _ensure_subscriber(self, w: Worker) -> None:
        if w.id in self.subscribers:
            return
        configured = self._configured.get(w.url)

        async def resolve() -> Endpoints | None:
            return configured or await discover(w.url, w.auth)

        sub = Subscriber(w.id, self.index, resolve, self._learn_block_size)
        self.subscribers[w.id] = sub
        self._tasks[w.id] = asyncio.get_running_loop().create_task(sub.run(), name=f"kv-events-{w.id}")

    def watch(self, w: Worker) -> None:
        """Subscribe as soon as the pool gets the worker (outside an event loop: at first use)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._ensure_subscriber(w)

    def _learn_block_size(self, eps: Endpoints) -> None:
        if self.block_size is None and eps.block_size:
            self.block_size = eps.block_size

    def forget(self, worker: Worker) -> None:
        task = self._tasks.pop(worker.id, None)
        if task is not None:
            task.cancel()
        self.subscribers.pop(worker.id, None)
        self.index.clear(worker.id)
        self._active.pop(worker.id, None)
        self._active_refs.pop(worker.id, None)
        self._queued.pop(worker.id, None)
        self._sent_at.pop(worker.id, None)
        self.fallback.forget(worker)

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def is_stale(self, w: Worker, now: float | None = None) -> bool:
        sub = self.subscribers.get(w.id)
        if sub is None or (self.block_size or self.index.block_size) is None:
            return True
        return sub.stale(now if now is not None else time.monotonic(), self._sent_at.get(w.id),
                         self.cfg.stale_after_s)

    # -- load at dispatch -----------------------------------------------------------------
    def _trim(self, w: Worker) -> None:
        q = self._active.get(w.id)
        if not q:
            return
        refs = self._active_refs[w.id]
        while len(q) > w.inflight:
            keys, prefill = q.popleft()
            self._queued[w.id] -= prefill
            for key in keys:
                n = refs[key] - 1
                if n:
                    refs[key] = n
                else:
                    del refs[key]

    def _record(self, w: Worker, keys: list[int], prefill: int, now: float) -> None:
        self._active.setdefault(w.id, deque()).append((keys, prefill))
        self._queued[w.id] = self._queued.get(w.id, 0) + prefill
        refs = self._active_refs.setdefault(w.id, Counter())
        refs.update(keys)
        sub = self.subscribers.get(w.id)
        since = self._sent_at.get(w.id)
        if since is None or (sub is not None and since <= sub.last_event_at):
            self._sent_at[w.id] = now

    # -- selection ------------------------------------------------------------------------
    def select(self, workers: Sequence[Worker], ctx: RouteContext) -> Decision | None:
        ws = candidates(workers, ctx)
        if not ws:
            return None
        for w in ws:
            self._ensure_subscriber(w)
            self._trim(w)
        self.decisions += 1
        now = time.monotonic()
        bs = self.block_size or self.index.block_size
        tokens = self.tokenizer.encode(ctx.body, ctx.text)
        if bs is None or not tokens:  # no engine page size known yet: cache_aware decides
            self.fallback_decisions += 1
            return self.fallback.select(ws, ctx)
        keys = block_keys(tokens, bs)
        matchable = (len(tokens) - 1) // bs  # the engine never serves the last prompt token from cache
        total = math.ceil(len(tokens) / bs)
        fresh = [w for w in ws if not self.is_stale(w, now)]
        depth = self.index.match(keys[:matchable], [w.id for w in fresh])
        stale = len(fresh) < len(ws)
        if stale:
            self.fallback_decisions += 1
            steps = self.fallback.tree.match(ctx.text) if ctx.text else []
        best: tuple[bool, float, int, int, int] | None = None
        chosen, chosen_overlap = ws[0], 0
        ratio = self.cfg.balance_ratio
        cap = ratio * sum(w.inflight for w in ws) / len(ws) + 1 if ratio is not None else None
        for w in ws:
            if w.id in depth:
                held = depth[w.id]
            else:  # stale: the tree's guess, in blocks
                chars = next((s.matched_chars for s in reversed(steps) if w.id in s.tenants), 0)
                held = int(matchable * chars / len(ctx.text)) if ctx.text else 0
            refs = self._active_refs.get(w.id)
            if refs:
                pend = 0
                while pend < matchable and keys[pend] in refs:
                    pend += 1
                held = max(held, pend)
            cost = self.cfg.overlap_weight * (total - held) + self._queued.get(w.id, 0)
            over = cap is not None and w.inflight > cap
            rank = (over, cost, w.inflight, self.index.blocks(w.id), w.processed)
            if best is None or rank < best:
                best, chosen, chosen_overlap = rank, w, held
        self._record(chosen, keys, total - chosen_overlap, now)
        if ctx.text:
            self.fallback.tree.insert(ctx.text, chosen.id)
        return Decision(chosen, cache_hit=chosen_overlap > 0,
                        predicted_cached_tokens=min(chosen_overlap * bs, max(len(tokens) - 1, 0)))

    def status(self) -> list[tuple[str, bool, int]]:
        """(worker id, usable, cached blocks) per subscribed worker, for the metrics."""
        now = time.monotonic()
        out = []
        known = (self.block_size or self.index.block_size) is not None
        for wid, sub in self.subscribers.items():
            ok = known and not sub.stale(now, self._sent_at.get(wid), self.cfg.stale_after_s)
            out.append((wid, ok, self.index.blocks(wid)))
        return out
