"""KV-cache events of a simulated worker, in SGLang's wire format, over ZeroMQ.

SGLang (`--kv-events-config '{"publisher": "zmq", "endpoint": ..., "replay_endpoint": ...}'`)
and vLLM publish what their prefix cache holds as msgpack batches on a PUB socket:

    frames: [topic (utf-8), sequence number (8 bytes, big-endian), payload]
    payload: KVEventBatch = [ts, [event, ...]]           (msgspec, array_like, SGLang)
    event:   ["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id]
             ["BlockRemoved", block_hashes]
             ["AllBlocksCleared"]

Sequence numbers start at 0 and grow by one per batch. A ROUTER socket on the replay
endpoint answers a request frame holding a start sequence number (8 bytes, big-endian) with
every buffered batch from there on, as [seq, payload] messages, then [-1 (signed), b""].

Differences from SGLang, on purpose: the sim always binds (a `*` host becomes the sim's own
host, so it never listens beyond --host), and it sends one BlockStored per new radix node
(all its pages) instead of one per page. Worker i of a sim process offsets both ports by i,
as SGLang does per data-parallel rank.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from sglfleet.sim.radix_cache import CacheEvent, Cleared, Removed, Stored

log = logging.getLogger("sglfleet.sim.kv_events")
END_SEQ = (-1).to_bytes(8, "big", signed=True)


class _Event(msgspec.Struct, array_like=True, tag=True):
    pass


class BlockStored(_Event):
    block_hashes: list[int]
    parent_block_hash: int | None
    token_ids: list[int]
    block_size: int
    lora_id: int | None = None


class BlockRemoved(_Event):
    block_hashes: list[int]


class AllBlocksCleared(_Event):
    pass


class KVEventBatch(msgspec.Struct, array_like=True):
    ts: float
    events: list[BlockStored | BlockRemoved | AllBlocksCleared]


def to_wire(event: CacheEvent) -> BlockStored | BlockRemoved | AllBlocksCleared:
    if isinstance(event, Stored):
        return BlockStored(event.block_hashes, event.parent_block_hash, event.token_ids, event.block_size)
    if isinstance(event, Removed):
        return BlockRemoved(event.block_hashes)
    assert isinstance(event, Cleared)
    return AllBlocksCleared()


@dataclass(frozen=True, kw_only=True)
class KvEventsConfig:
    """The subset of SGLang's KVEventsConfig the sim honours (same JSON keys)."""

    endpoint: str
    replay_endpoint: str | None = None
    buffer_steps: int = 10_000
    hwm: int = 100_000
    topic: str = ""

    @classmethod
    def parse(cls, text: str) -> KvEventsConfig:
        """From the `--kv-events-config` JSON; ValueError names what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"kv_events_config is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("kv_events_config must be a JSON object")
        if data.get("publisher", "zmq") != "zmq":
            raise ValueError("kv_events_config: the sim only has publisher 'zmq'")
        known = {"publisher", "endpoint", "replay_endpoint", "buffer_steps", "hwm", "topic", "max_queue_size"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"kv_events_config: unknown key(s) {', '.join(unknown)}")
        cfg = cls(endpoint=str(data.get("endpoint", "tcp://*:5557")),
                  replay_endpoint=data.get("replay_endpoint"),
                  buffer_steps=int(data.get("buffer_steps", 10_000)), hwm=int(data.get("hwm", 100_000)),
                  topic=str(data.get("topic", "")))
        for ep in (cfg.endpoint, cfg.replay_endpoint):
            if ep is not None and not ep.startswith("tcp://"):
                raise ValueError(f"kv_events_config: endpoint {ep!r} must be tcp://host:port")
            if ep is not None:
                _split(ep)
        if cfg.buffer_steps < 1:
            raise ValueError("kv_events_config: buffer_steps must be >= 1")
        return cfg

    def for_worker(self, index: int, host: str) -> KvEventsConfig:
        """This worker's endpoints: ports offset by `index`, a `*` host replaced by `host`."""
        return KvEventsConfig(endpoint=_offset(self.endpoint, index, host),
                              replay_endpoint=_offset(self.replay_endpoint, index, host) if self.replay_endpoint
                              else None, buffer_steps=self.buffer_steps, hwm=self.hwm, topic=self.topic)

    def to_json(self) -> str:
        """As SGLang's server_info reports `kv_events_config`."""
        return json.dumps({"publisher": "zmq", "endpoint": self.endpoint, "replay_endpoint": self.replay_endpoint,
                           "buffer_steps": self.buffer_steps, "hwm": self.hwm, "topic": self.topic})


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint[len("tcp://"):].rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"kv_events_config: endpoint {endpoint!r} must be tcp://host:port")
    return host, int(port)


def _offset(endpoint: str, index: int, host: str) -> str:
    h, port = _split(endpoint)
    if h == "*":
        h = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"tcp://{h}:{port + index}"


class KvEventPublisher:
    """PUB socket + replay ROUTER for one worker. `publish` never blocks (PUB drops at its
    high-water mark, like the engines'); replay requests are served by a task."""

    def __init__(self, cfg: KvEventsConfig) -> None:
        self.cfg = cfg
        self._ctx = zmq.asyncio.Context.instance()
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.set_hwm(cfg.hwm)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(cfg.endpoint)
        self._router: zmq.asyncio.Socket | None = None
        if cfg.replay_endpoint:
            self._router = self._ctx.socket(zmq.ROUTER)
            self._router.setsockopt(zmq.LINGER, 0)
            self._router.bind(cfg.replay_endpoint)
        self._topic = cfg.topic.encode()
        self._buffer: deque[tuple[int, bytes]] = deque(maxlen=cfg.buffer_steps)
        self._encoder = msgspec.msgpack.Encoder()
        self.seq = 0  # next sequence number
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._router is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve_replay())

    def publish(self, events: list[CacheEvent]) -> None:
        if not events:
            return
        payload = self._encoder.encode(KVEventBatch(time.time(), [to_wire(e) for e in events]))
        seq, self.seq = self.seq, self.seq + 1
        self._buffer.append((seq, payload))
        with contextlib.suppress(zmq.Again):
            self._pub.send_multipart((self._topic, seq.to_bytes(8, "big"), payload), flags=zmq.NOBLOCK)

    async def _serve_replay(self) -> None:
        assert self._router is not None
        while True:
            frames = await self._router.recv_multipart()
            if len(frames) != 3 or len(frames[2]) != 8:
                log.warning("ignoring a malformed replay request (%d frames)", len(frames))
                continue
            client, _, start = frames
            first = int.from_bytes(start, "big")
            for seq, payload in list(self._buffer):
                if seq >= first:
                    await self._router.send_multipart((client, b"", seq.to_bytes(8, "big"), payload))
            await self._router.send_multipart((client, b"", END_SEQ, b""))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._pub.close(linger=0)
        if self._router is not None:
            self._router.close(linger=0)

    def describe(self) -> dict[str, Any]:
        return {"endpoint": self.cfg.endpoint, "replay_endpoint": self.cfg.replay_endpoint,
                "topic": self.cfg.topic, "next_seq": self.seq, "buffered": len(self._buffer)}
