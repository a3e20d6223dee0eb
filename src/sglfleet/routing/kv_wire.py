"""Decode the KV-cache event batches SGLang and vLLM publish over ZeroMQ.

Both engines encode a batch with msgspec msgpack. SGLang's structs are `array_like`:
`[ts, [["BlockStored", hashes, parent, token_ids, block_size, lora_id, ...], ...]]`;
vLLM's are maps: `{"ts": .., "events": [{"type": "BlockStored", "block_hashes": ..}, ..],
"data_parallel_rank": ..}`. Both forms decode here into the three events a router needs;
fields this router does not use (lora, medium, extra keys) are ignored, and an event kind it
does not know is skipped. vLLM may send block hashes as bytes: any hashable value is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

BlockHash = int | bytes | str
_decoder = msgspec.msgpack.Decoder()


@dataclass(frozen=True, slots=True)
class BlockStored:
    block_hashes: list[BlockHash]
    parent_block_hash: BlockHash | None
    token_ids: list[int]
    block_size: int


@dataclass(frozen=True, slots=True)
class BlockRemoved:
    block_hashes: list[BlockHash]


@dataclass(frozen=True, slots=True)
class AllBlocksCleared:
    pass


KvEvent = BlockStored | BlockRemoved | AllBlocksCleared


class WireError(ValueError):
    """A payload that is not a KV event batch."""


def _hash(value: Any) -> BlockHash:
    if isinstance(value, list):  # msgpack has no tuples: a composite hash arrives as a list
        return msgspec.msgpack.encode(value)
    if isinstance(value, int | bytes | str):
        return value
    raise WireError(f"block hash of type {type(value).__name__}")


def _event(raw: Any) -> KvEvent | None:
    if isinstance(raw, list) and raw and isinstance(raw[0], str):
        kind, fields = raw[0], raw[1:]
        if kind == "BlockStored" and len(fields) >= 4:
            hashes, parent, tokens, size = fields[:4]
        elif kind == "BlockRemoved" and fields:
            return BlockRemoved([_hash(h) for h in fields[0]])
        elif kind == "AllBlocksCleared":
            return AllBlocksCleared()
        else:
            return None
    elif isinstance(raw, dict) and isinstance(raw.get("type"), str):
        kind = raw["type"]
        if kind == "BlockStored":
            hashes, parent = raw.get("block_hashes"), raw.get("parent_block_hash")
            tokens, size = raw.get("token_ids"), raw.get("block_size")
        elif kind == "BlockRemoved":
            return BlockRemoved([_hash(h) for h in raw.get("block_hashes") or []])
        elif kind == "AllBlocksCleared":
            return AllBlocksCleared()
        else:
            return None
    else:
        raise WireError("event is neither a tagged array nor a tagged map")
    if not isinstance(hashes, list) or not isinstance(tokens, list) or not isinstance(size, int) or size < 1:
        raise WireError("BlockStored without block_hashes, token_ids or a positive block_size")
    return BlockStored([_hash(h) for h in hashes], None if parent is None else _hash(parent),
                       [int(t) for t in tokens], size)


def decode_batch(payload: bytes) -> tuple[float, list[KvEvent]]:
    """(timestamp, events) of one batch; WireError when it is not one."""
    try:
        raw = _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise WireError(f"not msgpack: {exc}") from None
    if isinstance(raw, list) and len(raw) >= 2:
        ts, events = raw[0], raw[1]
    elif isinstance(raw, dict):
        ts, events = raw.get("ts", 0.0), raw.get("events")
    else:
        raise WireError("batch is neither [ts, events] nor {ts, events}")
    if not isinstance(events, list) or not isinstance(ts, int | float):
        raise WireError("batch events must be a list and ts a number")
    out = [e for e in (_event(r) for r in events) if e is not None]
    return float(ts), out
