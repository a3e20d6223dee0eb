"""Follow one engine's KV-event stream (ZeroMQ SUB) into the block index.

Per message [topic, seq, payload]:

- seq == last + 1: apply the batch;
- seq > last + 1 (a gap: the SUB socket dropped or joined late): ask the engine's replay
  ROUTER for everything from last + 1 (request [b"", start as 8 bytes]; answers [b"", seq,
  payload] ... [b"", -1, b""]), apply what is missing in order, then this batch;
- seq <= last (the engine restarted and its sequence began again): forget what the worker
  held, then replay from 0 like a first join.

On connecting it first replays from 0, so a gateway started after the engine learns the
engine's buffered history; a batch published while that runs shows up as a gap.
`AllBlocksCleared` clears the worker in the index. Where the endpoint is not configured it is read from the engine's
`/get_server_info` (`kv_events_config`, SGLang's launch argument; a `*` host means the
worker's own host) and retried until found.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import zmq
import zmq.asyncio

from sglfleet.routing.kv_index import BlockIndex
from sglfleet.routing.kv_wire import WireError, decode_batch

log = logging.getLogger("sglfleet.routing.kv_events")
END_SEQ = -1
REPLAY_TIMEOUT_S = 2.0
RETRY_S = 2.0


@dataclass(frozen=True, slots=True)
class Endpoints:
    endpoint: str
    replay_endpoint: str | None = None
    topic: str = ""
    block_size: int | None = None  # the engine's page size, when known


def _host_for(endpoint: str, worker_url: str) -> str:
    """tcp://*:5557 (or 0.0.0.0, ::) as published by the engine -> tcp://<worker host>:5557."""
    if not endpoint.startswith("tcp://"):
        return endpoint
    host, _, port = endpoint[len("tcp://"):].rpartition(":")
    if host in ("*", "0.0.0.0", "[::]", "::", ""):
        wh = urlsplit(worker_url).hostname or "127.0.0.1"
        host = f"[{wh}]" if ":" in wh else wh
    return f"tcp://{host}:{port}"


def endpoints_from_server_info(info: dict[str, object], worker_url: str) -> Endpoints | None:
    """The KV-event endpoints an SGLang server reports, or None when it publishes none."""
    raw = info.get("kv_events_config")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    if not isinstance(raw, dict) or raw.get("publisher", "zmq") != "zmq" or not raw.get("endpoint"):
        return None
    replay = raw.get("replay_endpoint")
    page = info.get("page_size")
    return Endpoints(_host_for(str(raw["endpoint"]), worker_url),
                     _host_for(str(replay), worker_url) if replay else None, str(raw.get("topic") or ""),
                     page if isinstance(page, int) and page > 0 else None)


async def discover(worker_url: str, auth: str | None = None, timeout_s: float = 5.0) -> Endpoints | None:
    """The worker's KV-event endpoints from its server info; `auth` is its Authorization value."""
    headers = {"Authorization": auth} if auth else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
        for path in ("/get_server_info", "/server_info"):
            try:
                async with s.get(worker_url + path, headers=headers) as r:
                    if r.status == 200:
                        info = await r.json(content_type=None)
                        return endpoints_from_server_info(info, worker_url) if isinstance(info, dict) else None
            except (aiohttp.ClientError, TimeoutError, ValueError):
                continue
    return None


class Subscriber:
    """One worker's event stream. `run()` loops until cancelled; state is read by the policy."""

    def __init__(self, worker_id: str, index: BlockIndex, resolve: Callable[[], Awaitable[Endpoints | None]],
                 on_endpoints: Callable[[Endpoints], None] | None = None) -> None:
        self.worker_id = worker_id
        self.index = index
        self._resolve = resolve
        self._on_endpoints = on_endpoints
        self.endpoints: Endpoints | None = None
        self.last_seq = -1
        self.last_event_at = 0.0  # monotonic time of the last batch applied
        self.synced = False  # connected and caught up at least once
        self.batches = self.gaps = self.replays = self.restarts = self.orphans = self.bad = 0
        self._ctx = zmq.asyncio.Context.instance()

    async def run(self) -> None:
        while self.endpoints is None:
            eps = await self._resolve()
            if eps is not None:
                self.endpoints = eps
                if self._on_endpoints is not None:
                    self._on_endpoints(eps)
            else:
                await asyncio.sleep(RETRY_S)
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 100_000)
        sub.setsockopt(zmq.SUBSCRIBE, self.endpoints.topic.encode())
        sub.connect(self.endpoints.endpoint)
        try:
            await self._replay(0, 2**62)  # the history the engine still buffers
            self.synced = True
            while True:
                frames = await sub.recv_multipart()
                if len(frames) != 3 or len(frames[1]) != 8:
                    self.bad += 1
                    continue
                await self.receive(int.from_bytes(frames[1], "big", signed=True), frames[2])
        finally:
            sub.close(linger=0)
            self.synced = False

    async def receive(self, seq: int, payload: bytes) -> None:
        if seq <= self.last_seq:  # the publisher started over: the engine restarted
            self.restarts += 1
            self.index.clear(self.worker_id)
            self.last_seq = -1
        if seq > self.last_seq + 1:
            self.gaps += 1
            await self._replay(self.last_seq + 1, seq)
        self._apply(seq, payload)
        self.synced = True

    def _apply(self, seq: int, payload: bytes) -> None:
        try:
            _, events = decode_batch(payload)
        except WireError as exc:
            self.bad += 1
            log.warning("worker %s: undecodable KV event batch %d: %s", self.worker_id, seq, exc)
            events = []
        res = self.index.apply(self.worker_id, events)
        self.orphans += res.orphans
        self.last_seq = seq
        self.batches += 1
        self.last_event_at = time.monotonic()

    async def _replay(self, start: int, until: int) -> None:
        """Apply batches start..until-1 from the replay socket (what it still buffers)."""
        eps = self.endpoints
        if eps is None or eps.replay_endpoint is None:
            return
        self.replays += 1
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(eps.replay_endpoint)
            await sock.send_multipart((b"", start.to_bytes(8, "big")))
            while True:
                if not await sock.poll(REPLAY_TIMEOUT_S * 1000):
                    log.warning("worker %s: KV event replay timed out", self.worker_id)
                    return
                frames = await sock.recv_multipart()
                if len(frames) != 3 or len(frames[1]) != 8:
                    self.bad += 1
                    continue
                seq = int.from_bytes(frames[1], "big", signed=True)
                if seq == END_SEQ:
                    return
                if self.last_seq < seq < until:
                    self._apply(seq, frames[2])
        finally:
            sock.close(linger=0)

    def stale(self, now: float, since: float | None, after_s: float) -> bool:
        """No usable view: not connected yet, or requests sent at `since` produced no event for
        `after_s` seconds (an idle engine publishes nothing, so silence alone is not stale)."""
        if not self.synced:
            return True
        return since is not None and since > self.last_event_at and now - since > after_s

    def describe(self) -> dict[str, object]:
        return {"synced": self.synced, "last_seq": self.last_seq, "batches": self.batches, "gaps": self.gaps,
                "replays": self.replays, "restarts": self.restarts, "orphans": self.orphans, "bad": self.bad,
                "blocks": self.index.blocks(self.worker_id)}


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
