"""One index from KV block to the workers that hold it, fed by the engines' KV events.

Engines name blocks with their own hashes, which a router cannot recompute in general
(SGLang and vLLM hash differently, with seeds and extra keys). So the index keys every block
on its own chained hash of the token ids the event carries, the way NVIDIA Dynamo's indexer
does: key(block) = hash((key(parent block), *its tokens)), key(root) = 0. Per worker it keeps
the engine hash -> key map that BlockRemoved and a later BlockStored's parent need. A
request's blocks get the same keys from its own tokens (`block_keys`), so "which workers hold
the first k blocks of this prompt" is one dict lookup per block.

Python's hash of a tuple of ints is the same in every process (only str/bytes hashing is
salted), so two gateways that read the same events build the same index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sglfleet.routing.kv_wire import AllBlocksCleared, BlockHash, BlockRemoved, BlockStored, KvEvent

ROOT_KEY = 0


def block_keys(tokens: Sequence[int], block_size: int, limit: int | None = None) -> list[int]:
    """Chained keys of the full blocks of `tokens` (at most `limit` blocks)."""
    n = len(tokens) // block_size
    if limit is not None:
        n = min(n, limit)
    keys: list[int] = []
    prev = ROOT_KEY
    for i in range(0, n * block_size, block_size):
        prev = hash((prev, *tokens[i : i + block_size]))
        keys.append(prev)
    return keys


@dataclass(slots=True)
class _WorkerBlocks:
    by_engine_hash: dict[BlockHash, int] = field(default_factory=dict)


@dataclass(slots=True)
class ApplyResult:
    stored: int = 0
    removed: int = 0
    orphans: int = 0  # stored blocks whose parent this index never saw (a missed event)
    cleared: bool = False


class BlockIndex:
    def __init__(self) -> None:
        self.holders: dict[int, set[str]] = {}
        self._workers: dict[str, _WorkerBlocks] = {}
        self.block_size: int | None = None  # the first block size an engine reported

    def blocks(self, worker: str) -> int:
        w = self._workers.get(worker)
        return len(w.by_engine_hash) if w else 0

    def workers(self) -> list[str]:
        return list(self._workers)

    def apply(self, worker: str, events: Iterable[KvEvent]) -> ApplyResult:
        w = self._workers.setdefault(worker, _WorkerBlocks())
        res = ApplyResult()
        for ev in events:
            if isinstance(ev, BlockStored):
                self._store(worker, w, ev, res)
            elif isinstance(ev, BlockRemoved):
                for h in ev.block_hashes:
                    key = w.by_engine_hash.pop(h, None)
                    if key is not None:
                        self._drop(worker, key)
                        res.removed += 1
            elif isinstance(ev, AllBlocksCleared):
                self.clear(worker)
                w = self._workers.setdefault(worker, _WorkerBlocks())
                res.cleared = True
        return res

    def _store(self, worker: str, w: _WorkerBlocks, ev: BlockStored, res: ApplyResult) -> None:
        if ev.parent_block_hash is None:
            prev = ROOT_KEY
        else:
            parent = w.by_engine_hash.get(ev.parent_block_hash)
            if parent is None:
                res.orphans += len(ev.block_hashes)
                return
            prev = parent
        bs, toks = ev.block_size, ev.token_ids
        if self.block_size is None:
            self.block_size = bs
        for i, h in enumerate(ev.block_hashes):
            chunk = toks[i * bs : (i + 1) * bs]
            if len(chunk) < bs:  # a partial block is never matched by a request's full blocks
                break
            prev = hash((prev, *chunk))
            old = w.by_engine_hash.get(h)
            if old is not None and old != prev:
                self._drop(worker, old)
            w.by_engine_hash[h] = prev
            self.holders.setdefault(prev, set()).add(worker)
            res.stored += 1

    def _drop(self, worker: str, key: int) -> None:
        held = self.holders.get(key)
        if held is not None:
            held.discard(worker)
            if not held:
                del self.holders[key]

    def clear(self, worker: str) -> None:
        """Forget everything `worker` holds (AllBlocksCleared, a restart, removal)."""
        w = self._workers.pop(worker, None)
        if w is not None:
            for key in w.by_engine_hash.values():
                self._drop(worker, key)

    def match(self, keys: Sequence[int], workers: Iterable[str]) -> dict[str, int]:
        """For each of `workers`, how many leading blocks of `keys` it holds (each key looked
        up once; the walk stops when no worker holds the next block)."""
        alive = set(workers)
        depth = dict.fromkeys(alive, 0)
        for i, key in enumerate(keys):
            held = self.holders.get(key)
            if not held:
                break
            alive &= held
            if not alive:
                break
            for w in alive:
                depth[w] = i + 1
        return depth
