"""Token-level radix prefix cache with reference counts and LRU eviction of leaves.

Each edge holds a run of token ids. `match_prefix` returns how many leading tokens are
cached and the deepest node reached (splitting an edge when the match ends inside it).
Running requests `lock` their node path so eviction never removes KV they use;
`evict(n)` removes least-recently-used unlocked leaves until n tokens are freed.

With `page_size` > 1 the cache works in whole pages, like SGLang's paged radix cache: only
full pages are inserted, matches and edge splits stop at page boundaries. With
`record_events` it queues the KV events an SGLang engine publishes (`kv_events.py`): one
stored block per page inserted, the pages of every evicted leaf, and a clear on reset. Each
page has a chained 64-bit hash (its parent page's hash and its tokens), kept on the node.
"""

from __future__ import annotations

import hashlib
import heapq
from array import array
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stored:
    """Pages added to the cache: `block_hashes[i]` covers `token_ids[i*page:(i+1)*page]`."""

    block_hashes: list[int]
    parent_block_hash: int | None
    token_ids: list[int]
    block_size: int


@dataclass(frozen=True, slots=True)
class Removed:
    block_hashes: list[int]


@dataclass(frozen=True, slots=True)
class Cleared:
    pass


CacheEvent = Stored | Removed | Cleared


def page_hash(parent: int | None, tokens: Sequence[int]) -> int:
    """Signed 64-bit hash of one page, chained on its parent page's hash."""
    h = hashlib.blake2b(digest_size=8)
    h.update((parent or 0).to_bytes(8, "big", signed=True))
    h.update(array("Q", tokens).tobytes())
    return int.from_bytes(h.digest(), "big", signed=True)


class Node:
    __slots__ = ("key", "children", "parent", "lock_ref", "last_access", "hashes")

    def __init__(self, key: tuple[int, ...], parent: Node | None) -> None:
        self.key = key
        self.children: dict[int | tuple[int, ...], Node] = {}  # by first token (first page when paged)
        self.parent = parent
        self.lock_ref = 0
        self.last_access = 0
        self.hashes: list[int] = []  # one per page of `key` (when events are recorded)


def _common_len(a: tuple[int, ...], b: Sequence[int], start: int) -> int:
    n = min(len(a), len(b) - start)
    i = 0
    while i < n and a[i] == b[start + i]:
        i += 1
    return i


class RadixCache:
    def __init__(self, page_size: int = 1, record_events: bool = False) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.page_size = page_size
        self.record_events = record_events
        self.events: list[CacheEvent] = []
        self.root = Node((), None)
        self.reset()

    def take_events(self) -> list[CacheEvent]:
        """The events queued since the last call (oldest first)."""
        out, self.events = self.events, []
        return out

    def reset(self) -> None:
        if self.record_events and self.root.children:
            self.events.append(Cleared())
        self.root = Node((), None)
        self.root.lock_ref = 1  # never evicted
        self.total_tokens = 0
        self.evictable_tokens = 0
        self._tick = 0

    def _child_key(self, seq: Sequence[int], start: int = 0) -> int | tuple[int, ...]:
        """Children are keyed by their first page (SGLang's paged radix key): two edges may share
        a first token but never a first page."""
        return seq[start] if self.page_size == 1 else tuple(seq[start : start + self.page_size])

    def _touch(self, node: Node) -> None:
        self._tick += 1
        node.last_access = self._tick

    def _split(self, node: Node, at: int) -> Node:
        """Cut node's edge after `at` tokens; return the new upper node."""
        assert node.parent is not None
        upper = Node(node.key[:at], node.parent)
        if node.hashes:
            pages = at // self.page_size
            upper.hashes, node.hashes = node.hashes[:pages], node.hashes[pages:]
        upper.lock_ref = node.lock_ref
        upper.last_access = node.last_access
        node.parent.children[self._child_key(upper.key)] = upper
        node.key = node.key[at:]
        node.parent = upper
        upper.children[self._child_key(node.key)] = node
        return upper

    def match_prefix(self, tokens: Sequence[int]) -> tuple[int, Node]:
        """(number of cached leading tokens, deepest node covering exactly them)."""
        node, pos = self.root, 0
        self._touch(node)
        while pos < len(tokens):
            if len(tokens) - pos < self.page_size:
                break
            child = node.children.get(self._child_key(tokens, pos))
            if child is None:
                break
            k = _common_len(child.key, tokens, pos)
            k -= k % self.page_size
            if k == 0:
                break
            if k < len(child.key):
                child = self._split(child, k)
            node, pos = child, pos + k
            self._touch(node)
        return pos, node

    def insert(self, tokens: Sequence[int]) -> tuple[int, Node]:
        """Cache `tokens`; return (newly added token count, node of the full sequence)."""
        ps = self.page_size
        if ps > 1:
            tokens = tokens[: len(tokens) - len(tokens) % ps]
        matched, node = self.match_prefix(tokens)
        if matched == len(tokens):
            return 0, node
        leaf = Node(tuple(tokens[matched:]), node)
        node.children[self._child_key(leaf.key)] = leaf
        self._touch(leaf)
        if self.record_events:
            self._record_stored(leaf)
        added = len(leaf.key)
        self.total_tokens += added
        self.evictable_tokens += added
        return added, leaf

    def lock(self, node: Node) -> None:
        cur: Node | None = node
        while cur is not None:
            if cur.lock_ref == 0:
                self.evictable_tokens -= len(cur.key)
            cur.lock_ref += 1
            cur = cur.parent

    def unlock(self, node: Node) -> None:
        cur: Node | None = node
        while cur is not None:
            cur.lock_ref -= 1
            if cur.lock_ref == 0:
                self.evictable_tokens += len(cur.key)
            cur = cur.parent

    def _leaves(self) -> list[tuple[int, int, Node]]:
        out: list[tuple[int, int, Node]] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(node.children.values())
            elif node.lock_ref == 0:
                out.append((node.last_access, id(node), node))
        return out

    def evict(self, num_tokens: int) -> int:
        """Evict LRU unlocked leaves until `num_tokens` are freed (or none are left)."""
        if num_tokens <= 0 or self.evictable_tokens == 0:
            return 0
        heap = self._leaves()
        heapq.heapify(heap)
        freed = 0
        while heap and freed < num_tokens:
            _, _, node = heapq.heappop(heap)
            parent = node.parent
            assert parent is not None
            del parent.children[self._child_key(node.key)]
            if self.record_events and node.hashes:
                self.events.append(Removed(list(node.hashes)))
            freed += len(node.key)
            self.total_tokens -= len(node.key)
            self.evictable_tokens -= len(node.key)
            if parent is not self.root and not parent.children and parent.lock_ref == 0:
                heapq.heappush(heap, (parent.last_access, id(parent), parent))
        return freed

    def _record_stored(self, leaf: Node) -> None:
        parent = leaf.parent
        prev = parent.hashes[-1] if parent is not None and parent.hashes else None
        first, ps, key = prev, self.page_size, leaf.key
        for i in range(0, len(key), ps):
            prev = page_hash(prev, key[i : i + ps])
            leaf.hashes.append(prev)
        self.events.append(Stored(list(leaf.hashes), first, list(key), ps))

    def node_count(self) -> int:
        count, stack = 0, [self.root]
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node.children.values())
        return count - 1
