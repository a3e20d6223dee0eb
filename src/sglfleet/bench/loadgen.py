"""Async load generator: fixed concurrency or Poisson/gamma arrivals, count or duration stop.

Several targets (`--compare`) run in the same window with interleaved dispatch, each with
its own concurrency limit, so server-side noise hits them alike.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from sglfleet.bench.client import RequestRecord, Target, send
from sglfleet.bench.workloads import BenchRequest

WARMUP_MAX_TOKENS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadShape:
    concurrency: int | None = None  # max requests in flight per target; None = unlimited
    request_rate: float = math.inf  # requests/s per target; inf = all due at once
    burstiness: float = 1.0  # gamma shape: 1 = Poisson, <1 burstier, >1 more regular
    num_requests: int | None = None  # stop after this many (conversations, per target)
    duration_s: float | None = None  # or stop dispatching after this long (cycles the workload)
    warmup: int = 1  # requests per target before the measured run, excluded from metrics
    seed: int = 42
    request_timeout_s: float = 600.0
    replay: bool = False  # trace replay: each request is due at its own `at_s` x time_scale
    time_scale: float = 1.0  # trace replay: multiply the trace's offsets (0.5 = twice as fast)

    def describe(self) -> str:
        if self.replay:
            conc = "" if self.concurrency is None else f", concurrency cap {self.concurrency}"
            return f"trace replay, time scale {self.time_scale:g}{conc}"
        rate = "inf" if math.isinf(self.request_rate) else f"{self.request_rate:g} req/s"
        conc = "unlimited" if self.concurrency is None else str(self.concurrency)
        return f"concurrency {conc}, request rate {rate}"


@dataclass(frozen=True, slots=True)
class TargetRun:
    target: Target
    records: tuple[RequestRecord, ...]
    t0: float  # perf_counter at the start of the measured run
    t_end: float  # perf_counter when this target's last request finished

    @property
    def duration_s(self) -> float:
        return self.t_end - self.t0


OnRecord = Callable[[RequestRecord], None]


def arrival_offsets(n: int, rate: float, burstiness: float, seed: int) -> list[float]:
    """Cumulative arrival times (s) with gamma gaps (shape=burstiness, mean=1/rate)."""
    if math.isinf(rate):
        return [0.0] * n
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.gammavariate(burstiness, 1.0 / (rate * burstiness))
    return out


def _schedule(requests: list[BenchRequest], shape: LoadShape) -> Iterator[BenchRequest]:
    """The requests in order; cycled when stopping by duration or asking for more than exist."""
    if shape.replay or (shape.duration_s is None and (shape.num_requests or 0) <= len(requests)):
        limit = shape.num_requests if shape.num_requests is not None else len(requests)
        yield from requests[:limit]
        return
    i = 0
    while shape.num_requests is None or i < shape.num_requests:
        base = requests[i % len(requests)]
        yield BenchRequest(i, base.turns, base.input_tokens, base.output_tokens, base.group,
                           base.at_s)
        i += 1


async def _conversation(
    session: aiohttp.ClientSession,
    target: Target,
    req: BenchRequest,
    arrival: float,
    count_tokens: Callable[[str], int] | None,
    count_source: str,
    on_record: OnRecord | None,
    max_tokens: int | None = None,
) -> list[RequestRecord]:
    """Run a request's turns in order; later turns carry the growing history."""
    messages: list[dict[str, str]] = []
    records = []
    for turn, text in enumerate(req.turns):
        messages.append({"role": "user", "content": text})
        record = await send(
            session, target, list(messages),
            index=req.index, turn=turn, group=req.group,
            input_tokens=req.input_tokens if turn == 0 else -1,
            max_tokens=max_tokens or req.output_tokens,
            arrival_s=arrival if turn == 0 else time.perf_counter(),
            count_tokens=count_tokens, count_source=count_source,
        )
        records.append(record)
        if on_record is not None:
            on_record(record)
        if not record.ok:
            break
        messages.append({"role": "assistant", "content": record.generated_text})
    return records


async def run_load(
    targets: list[Target],
    requests: list[BenchRequest],
    shape: LoadShape,
    *,
    count_tokens: Callable[[str], int] | None = None,
    count_source: str = "tokenizer",
    on_record: OnRecord | None = None,
    session: aiohttp.ClientSession | None = None,
) -> list[TargetRun]:
    """Warm up, then run the measured load against every target; one TargetRun each."""
    if not requests:
        raise ValueError("the workload produced no requests")
    own_session = session is None
    if session is None:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=10, sock_read=shape.request_timeout_s
        )
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False), timeout=timeout
        )
    try:
        await _warmup(session, targets, requests, shape, count_tokens, count_source)
        return await _measured(
            session, targets, requests, shape, count_tokens, count_source, on_record
        )
    finally:
        if own_session:
            await session.close()


async def _warmup(
    session: aiohttp.ClientSession,
    targets: list[Target],
    requests: list[BenchRequest],
    shape: LoadShape,
    count_tokens: Callable[[str], int] | None,
    count_source: str,
) -> None:
    for i in range(shape.warmup):
        base = requests[i % len(requests)]
        single = BenchRequest(base.index, base.turns[:1], base.input_tokens, base.output_tokens)
        await asyncio.gather(*(
            _conversation(session, t, single, time.perf_counter(), count_tokens, count_source,
                          None, max_tokens=min(WARMUP_MAX_TOKENS, base.output_tokens))
            for t in targets
        ))


async def _measured(
    session: aiohttp.ClientSession,
    targets: list[Target],
    requests: list[BenchRequest],
    shape: LoadShape,
    count_tokens: Callable[[str], int] | None,
    count_source: str,
    on_record: OnRecord | None,
) -> list[TargetRun]:
    records: dict[str, list[RequestRecord]] = {t.label: [] for t in targets}
    t_end: dict[str, float] = {}
    t0 = time.perf_counter()
    deadline = math.inf if shape.duration_s is None else t0 + shape.duration_s

    async def one(target: Target, req: BenchRequest, arrival: float,
                  sem: asyncio.Semaphore | None) -> None:
        if sem is not None:
            async with sem:
                recs = await _conversation(session, target, req, arrival, count_tokens,
                                           count_source, on_record)
        else:
            recs = await _conversation(session, target, req, arrival, count_tokens,
                                       count_source, on_record)
        records[target.label].extend(recs)
        t_end[target.label] = time.perf_counter()

    if math.isinf(shape.request_rate) and not shape.replay:
        await _closed_loop(targets, requests, shape, deadline, one)
    else:
        await _open_loop(targets, requests, shape, t0, deadline, one)
    return [
        TargetRun(t, tuple(records[t.label]), t0, t_end.get(t.label, time.perf_counter()))
        for t in targets
    ]


RunOne = Callable[[Target, BenchRequest, float, "asyncio.Semaphore | None"], Coroutine[Any, Any, None]]


async def _closed_loop(
    targets: list[Target], requests: list[BenchRequest], shape: LoadShape, deadline: float,
    one: RunOne,
) -> None:
    # One worker pool per target pulling from its own copy of the schedule; workers are
    # started interleaved across targets so both see the same server conditions.
    queues = {t.label: _schedule(requests, shape) for t in targets}
    total = shape.num_requests or len(requests)
    num_workers = shape.concurrency or (total if shape.duration_s is None else 1)

    async def worker(target: Target) -> None:
        for req in queues[target.label]:
            if time.perf_counter() >= deadline:
                return
            await one(target, req, time.perf_counter(), None)

    tasks = [asyncio.create_task(worker(t)) for _ in range(num_workers) for t in targets]
    await asyncio.gather(*tasks)


async def _open_loop(
    targets: list[Target], requests: list[BenchRequest], shape: LoadShape, t0: float,
    deadline: float, one: RunOne,
) -> None:
    # Open loop: requests are dispatched when due, whether or not earlier ones finished;
    # --concurrency then caps in-flight requests per target (queueing shows in arrival_s).
    sems: dict[str, asyncio.Semaphore | None] = {
        t.label: asyncio.Semaphore(shape.concurrency) if shape.concurrency else None
        for t in targets
    }
    schedule = list(_take_until(_schedule(requests, shape), shape))
    if shape.replay:
        offsets = [(r.at_s or 0.0) * shape.time_scale for r in schedule]
    else:
        offsets = arrival_offsets(len(schedule), shape.request_rate, shape.burstiness, shape.seed)
    tasks: list[asyncio.Task[None]] = []
    for i, (req, offset) in enumerate(zip(schedule, offsets, strict=True)):
        due = t0 + offset
        if due >= deadline:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        order = targets[i % len(targets):] + targets[:i % len(targets)]  # rotate first mover
        for t in order:
            tasks.append(asyncio.create_task(one(t, req, due, sems[t.label])))
    await asyncio.gather(*tasks)


def _take_until(it: Iterator[BenchRequest], shape: LoadShape) -> Iterator[BenchRequest]:
    if shape.duration_s is None or shape.replay:
        yield from it
        return
    # enough arrivals to cover the duration at the given rate, with generous slack
    cap = shape.num_requests or int(shape.duration_s * shape.request_rate * 3 + 100)
    for i, req in enumerate(it):
        if i >= cap:
            return
        yield req
