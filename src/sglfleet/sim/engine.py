"""The simulated engine: KV admission, continuous batching and the cost model.

Normal mode runs one scheduler task per worker, like SGLang's scheduler loop:

1. Admit waiting requests in FIFO order while `max_running`, the per-step prefill token
   budget and the KV pool allow (evicting LRU cache leaves to make room). A request
   reserves its uncached prompt tokens plus `max_new_tokens`.
2. If any were admitted, run one prefill step (cost: base + per uncached token, or the KV
   transfer cost for PD decode requests); each admitted request then emits its first token.
3. Otherwise run one decode step (cost grows with the batch size); every running request
   emits one token.
4. A finished request inserts prompt + output into the radix cache and frees its
   reservation; the cache is trimmed back under the pool size.

KV events (when a publisher is attached) leave after every step, every finish and a flush,
in the order the cache produced them.

Steps sleep on a deadline clock, so the simulated timeline holds in real (scaled) time.
Fixed-timing mode skips batching: each request sleeps ttft_ms, then itl_ms per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from sglfleet.sim.config import SimConfig
from sglfleet.sim.metrics import LoadSnapshot, SimMetrics
from sglfleet.sim.radix_cache import CacheEvent, RadixCache
from sglfleet.sim.request import SimRequest
from sglfleet.sim.tokenizer import token_id


class Engine:
    def __init__(
        self,
        config: SimConfig,
        metrics: SimMetrics,
        publish: Callable[[list[CacheEvent]], None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.publish = publish
        self.cache = RadixCache(config.page_size, record_events=publish is not None)
        self.waiting: deque[SimRequest] = deque()
        self.running: dict[SimRequest, None] = {}  # insertion-ordered set
        self.reserved_total = 0
        self.steps = 0
        self.prompt_tokens_total = 0
        self.cached_tokens_total = 0
        self.generated_tokens_total = 0
        self.last_gen_throughput = 0.0
        self._wake = asyncio.Event()
        self._clock = 0.0
        self._task: asyncio.Task[None] | None = None
        self._fixed_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if not self.config.fixed_timing and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        self.abort_all()
        tasks = [t for t in [self._task, *self._fixed_tasks] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    # -- requests ----------------------------------------------------------------------
    def check_fits(self, prompt_tokens: int, max_new_tokens: int) -> None:
        cfg = self.config
        total = prompt_tokens + max_new_tokens
        if total > cfg.context_len:
            raise ValueError(
                f"Requested token count exceeds the model's maximum context length of "
                f"{cfg.context_len} tokens. You requested a total of {total} tokens: "
                f"{prompt_tokens} tokens from the input messages and {max_new_tokens} "
                f"tokens for the completion."
            )
        if total > cfg.cache_tokens and not cfg.fixed_timing:
            raise ValueError(f"request needs {total} KV tokens; the pool holds {cfg.cache_tokens}")

    def submit(self, req: SimRequest) -> None:
        self.check_fits(req.prompt_tokens, req.max_new_tokens)
        self.metrics.num_requests.inc()
        if self.config.fixed_timing:
            task = asyncio.get_running_loop().create_task(self._run_fixed(req))
            self._fixed_tasks.add(task)
            task.add_done_callback(self._fixed_tasks.discard)
            return
        self.waiting.append(req)
        self._wake.set()

    def abort(self, req: SimRequest) -> None:
        if req.finished:
            return
        if req.admitted_at is None:
            with contextlib.suppress(ValueError):
                self.waiting.remove(req)
        self.metrics.num_aborted_requests.inc()
        self._finish(req, "abort")
        self._wake.set()

    def abort_rid(self, rid: str) -> int:
        victims = [r for r in [*self.waiting, *self.running] if r.rid == rid]
        for req in victims:
            self.abort(req)
        return len(victims)

    def abort_all(self) -> int:
        victims = [*self.waiting, *self.running]
        for req in victims:
            self.abort(req)
        return len(victims)

    def flush(self) -> bool:
        """Drop the whole prefix cache; False (nothing done) unless idle."""
        if self.waiting or self.running:
            return False
        self.cache.reset()
        self.prompt_tokens_total = self.cached_tokens_total = 0
        self._publish()
        return True

    def _publish(self) -> None:
        if self.publish is not None and self.cache.events:
            self.publish(self.cache.take_events())

    def snapshot(self, bootstrap_waiting: int = 0) -> LoadSnapshot:
        used = self.cache.total_tokens - self.cache.evictable_tokens + self.reserved_total
        rate = (
            self.cached_tokens_total / self.prompt_tokens_total if self.prompt_tokens_total else 0.0
        )
        return LoadSnapshot(
            num_running_reqs=len(self.running),
            num_queue_reqs=len(self.waiting),
            num_used_tokens=max(used, 0),
            max_total_num_tokens=self.config.cache_tokens,
            cache_hit_rate=rate,
            gen_throughput=self.last_gen_throughput,
            num_bootstrap_wait_reqs=bootstrap_waiting,
        )

    # -- token flow --------------------------------------------------------------------
    def _emit(self, req: SimRequest, now: float) -> None:
        if req.finished:
            return
        req.output.append(req.sampler.next_piece())
        if req.first_token_at is None:
            req.first_token_at = now
            self.metrics.ttft.observe(now - req.created)
        else:
            self.metrics.itl.observe(now - req.last_token_at)
        req.last_token_at = now
        self.generated_tokens_total += 1
        self.metrics.generation_tokens.inc()
        if len(req.output) >= req.max_new_tokens:
            self._finish(req, "length")
        elif not req.ignore_eos and req.sampler.stops(self.config.eos_rate):
            self._finish(req, "stop")
        req.notify()

    def _account_prompt(self, req: SimRequest, matched: int) -> None:
        if not req.prefilled:
            req.cached_tokens = matched
        self.prompt_tokens_total += req.prompt_tokens
        self.cached_tokens_total += req.cached_tokens
        self.metrics.prompt_tokens.inc(req.prompt_tokens)
        self.metrics.cached_tokens.inc(req.cached_tokens)

    def _finish(self, req: SimRequest, reason: str) -> None:
        req.finish_reason = reason
        req.finished_at = now = time.perf_counter()
        self.running.pop(req, None)
        if req.admitted_at is not None:
            self.metrics.e2e.observe(now - req.created)
            full = req.prompt_ids + [token_id(p) for p in req.output]
            self.cache.insert(full)
        if req.node is not None:
            self.cache.unlock(req.node)
            req.node = None
        self.reserved_total -= req.reserved
        req.reserved = 0
        self._trim()
        self._publish()
        req.notify()

    def _trim(self) -> None:
        over = self.cache.total_tokens + self.reserved_total - self.config.cache_tokens
        if over > 0:
            self.cache.evict(over)

    # -- scheduler ---------------------------------------------------------------------
    def _admit(self) -> list[SimRequest]:
        cfg, cache = self.config, self.cache
        admitted: list[SimRequest] = []
        budget = cfg.max_prefill_tokens
        now = time.perf_counter()
        while self.waiting and len(self.running) < cfg.max_running:
            req = self.waiting[0]
            # like SGLang, the last prompt token is always computed (it yields the logits)
            matched, node = cache.match_prefix(req.prompt_ids[:-1])
            uncached = req.prompt_tokens - matched
            if admitted and uncached > budget:
                break
            need = uncached + req.max_new_tokens
            cache.lock(node)
            free = cfg.cache_tokens - cache.total_tokens - self.reserved_total
            if free < need:
                cache.evict(need - free)
                free = cfg.cache_tokens - cache.total_tokens - self.reserved_total
            if free < need:
                cache.unlock(node)
                break
            self.waiting.popleft()
            req.node, req.reserved, req.admitted_at = node, need, now
            self.reserved_total += need
            self.running[req] = None
            self._account_prompt(req, matched)
            self.metrics.queue_time.observe(now - req.created)
            admitted.append(req)
            budget -= uncached
        return admitted

    async def _advance(self, sim_ms: float) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._clock = max(self._clock, now - 0.05) + self.config.seconds(sim_ms)
        await asyncio.sleep(max(self._clock - now, 0.0))

    def _prefill_cost_ms(self, batch: list[SimRequest]) -> float:
        cfg = self.config
        cost = 0.0
        computed = 0
        for req in batch:
            if req.prefilled:
                cost += cfg.kv_transfer_ms_per_token * req.prompt_tokens
            else:
                computed += req.prompt_tokens - req.cached_tokens
        if computed:
            cost += cfg.prefill_base_ms + cfg.prefill_ms_per_token * computed
        return cost

    async def _loop(self) -> None:
        cfg = self.config
        while True:
            if not self.waiting and not self.running:
                self._wake.clear()
                await self._wake.wait()
                self._clock = asyncio.get_running_loop().time()
            admitted = self._admit()
            self._publish()  # evictions made room for the admitted requests
            if admitted:
                await self._advance(self._prefill_cost_ms(admitted))
                self.steps += 1
                now = time.perf_counter()
                for req in admitted:
                    if req.finished:
                        continue
                    added, node = self.cache.insert(req.prompt_ids)
                    self.cache.lock(node)
                    if req.node is not None:
                        self.cache.unlock(req.node)
                    req.node = node
                    # the prompt's KV now lives in the tree; keep only the output reservation
                    self.reserved_total -= req.reserved - req.max_new_tokens
                    req.reserved = req.max_new_tokens
                    self._emit(req, now)
                self._publish()
            elif self.running:
                batch = list(self.running)
                t0 = time.perf_counter()
                await self._advance(cfg.decode_step_ms + cfg.decode_ms_per_req * len(batch))
                self.steps += 1
                now = time.perf_counter()
                if now > t0:
                    self.last_gen_throughput = len(batch) / (now - t0)
                for req in batch:
                    self._emit(req, now)
            else:  # head of queue cannot fit even with an empty batch: cannot happen
                await asyncio.sleep(0.001)  # pragma: no cover

    async def _run_fixed(self, req: SimRequest) -> None:
        cfg = self.config
        matched, _ = self.cache.match_prefix(req.prompt_ids[:-1])
        req.admitted_at = time.perf_counter()
        self.running[req] = None
        self._account_prompt(req, matched)
        delay = cfg.seconds(cfg.ttft_ms or 0.0)
        itl = cfg.seconds(cfg.itl_ms or 0.0)
        while not req.finished:
            await asyncio.sleep(delay)
            delay = itl
            self._emit(req, time.perf_counter())
