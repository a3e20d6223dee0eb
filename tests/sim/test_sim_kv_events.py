"""KV events: the paged radix cache's event log, and the ZeroMQ publisher in SGLang's format."""

from __future__ import annotations

import json

import msgspec
import pytest
import zmq
import zmq.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from sglfleet.sim import SimConfig, find_free_ports
from sglfleet.sim.kv_events import KvEventsConfig
from sglfleet.sim.radix_cache import Cleared, RadixCache, Removed, Stored, page_hash
from sglfleet.sim.tokenizer import render_chat, tokenize


def test_paged_cache_inserts_and_matches_whole_pages_only() -> None:
    cache = RadixCache(page_size=4, record_events=True)
    assert cache.insert(list(range(10)))[0] == 8  # the partial page (8, 9) is not cached
    assert cache.match_prefix([0, 1, 2, 3, 4, 5, 99, 99])[0] == 4  # match stops at a page boundary
    ev = cache.take_events()
    assert ev == [Stored([page_hash(None, [0, 1, 2, 3]), page_hash(page_hash(None, [0, 1, 2, 3]), [4, 5, 6, 7])],
                         None, list(range(8)), 4)]


def test_events_chain_across_splits_evictions_and_reset() -> None:
    cache = RadixCache(page_size=2, record_events=True)
    cache.insert([1, 2, 3, 4])
    (first,) = cache.take_events()
    assert isinstance(first, Stored)
    cache.insert([1, 2, 7, 8])  # splits [1,2 | 3,4]; the new branch's parent is page [1,2]
    (branch,) = cache.take_events()
    assert isinstance(branch, Stored)
    assert branch.parent_block_hash == first.block_hashes[0]
    assert branch.token_ids == [7, 8]
    cache.match_prefix([1, 2, 7, 8])  # [3,4] is now the least recently used leaf
    assert cache.evict(1) == 2
    assert cache.take_events() == [Removed([first.block_hashes[1]])]
    cache.reset()
    assert cache.take_events() == [Cleared()]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=12), min_size=1, max_size=25),
       st.integers(1, 3), st.integers(4, 30))
def test_event_log_replays_to_exactly_the_cached_pages(seqs: list[list[int]], page: int, budget: int) -> None:
    """Folding the events gives the set of pages the cache holds, whatever the inserts/evictions."""
    cache = RadixCache(page_size=page, record_events=True)
    held: set[int] = set()
    for s in seqs:
        cache.insert(s)
        over = cache.total_tokens - budget
        if over > 0:
            cache.evict(over)
        for ev in cache.take_events():
            if isinstance(ev, Stored):
                assert len(ev.token_ids) == len(ev.block_hashes) * page
                held.update(ev.block_hashes)
            elif isinstance(ev, Removed):
                assert set(ev.block_hashes) <= held
                held.difference_update(ev.block_hashes)
    assert len(held) * page == cache.total_tokens
    stack, in_tree = [cache.root], 0
    while stack:  # the accounting matches the tree (no edge lost to a shared first token)
        node = stack.pop()
        in_tree += len(node.key)
        stack.extend(node.children.values())
    assert in_tree == cache.total_tokens


def test_paged_edges_sharing_a_first_token_coexist() -> None:
    cache = RadixCache(page_size=2)
    cache.insert([1, 2, 3, 4])
    cache.insert([1, 9, 3, 4])  # same first token, different first page
    assert cache.match_prefix([1, 2, 3, 4])[0] == 4 and cache.match_prefix([1, 9, 3, 4])[0] == 4
    assert cache.total_tokens == 8


def test_kv_events_config_is_checked() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        SimConfig(kv_events_config="{")
    with pytest.raises(ValueError, match="unknown key"):
        SimConfig(kv_events_config='{"endpoint": "tcp://127.0.0.1:1", "bogus": 1}')
    with pytest.raises(ValueError, match="tcp://host:port"):
        SimConfig(kv_events_config='{"endpoint": "ipc:///tmp/x"}')
    cfg = KvEventsConfig.parse('{"publisher": "zmq", "endpoint": "tcp://*:5557", "replay_endpoint": "tcp://*:5657"}')
    w3 = cfg.for_worker(3, "127.0.0.1")
    assert (w3.endpoint, w3.replay_endpoint) == ("tcp://127.0.0.1:5560", "tcp://127.0.0.1:5660")


class _Stored(msgspec.Struct, array_like=True, tag="BlockStored"):
    block_hashes: list[int]
    parent_block_hash: int | None
    token_ids: list[int]
    block_size: int
    lora_id: int | None


class _Removed(msgspec.Struct, array_like=True, tag="BlockRemoved"):
    block_hashes: list[int]


class _Cleared(msgspec.Struct, array_like=True, tag="AllBlocksCleared"):
    pass


class _Batch(msgspec.Struct, array_like=True):  # SGLang's KVEventBatch, as a consumer declares it
    ts: float
    events: list[_Stored | _Removed | _Cleared]


async def test_worker_publishes_sglang_batches_and_replays_them(start_sim, http) -> None:
    base = find_free_ports(4)
    kv = json.dumps({"publisher": "zmq", "endpoint": f"tcp://127.0.0.1:{base}",
                     "replay_endpoint": f"tcp://127.0.0.1:{base + 2}", "topic": "kv"})
    fleet = await start_sim(SimConfig(kv_events_config=kv, page_size=4, time_scale=0.0), n=2)
    async with http.get(fleet.urls[1] + "/get_server_info") as r:
        info = await r.json()
    assert info["page_size"] == 4
    assert json.loads(info["kv_events_config"])["endpoint"] == f"tcp://127.0.0.1:{base + 1}"  # offset by index

    ctx = zmq.asyncio.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"kv")
    sub.connect(f"tcp://127.0.0.1:{base}")
    messages = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]
    try:
        frames: list[list[bytes]] = []
        for _ in range(50):  # a SUB socket joins asynchronously: send until it hears
            async with http.post(fleet.url + "/v1/chat/completions",
                                 json={"messages": messages, "max_tokens": 2}) as r:
                assert r.status == 200
            if await sub.poll(100):
                frames.append(await sub.recv_multipart())
                break
        assert frames, "no KV event batch arrived"
        topic, seq, payload = frames[0]
        assert topic == b"kv" and len(seq) == 8
        batch = msgspec.msgpack.decode(payload, type=_Batch)
        stored = [e for e in batch.events if isinstance(e, _Stored)]
        prompt = tokenize(render_chat(messages))
        assert stored and stored[0].block_size == 4
        assert stored[0].token_ids == prompt[: len(stored[0].token_ids)]  # the prompt's first pages
    finally:
        sub.close(linger=0)

    async def replay(start: int) -> list[tuple[int, _Batch]]:
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(f"tcp://127.0.0.1:{base + 2}")
        out = []
        try:
            await dealer.send_multipart([b"", start.to_bytes(8, "big")])
            while True:
                assert await dealer.poll(2000)
                _, seq_b, body = await dealer.recv_multipart()
                seq_n = int.from_bytes(seq_b, "big", signed=True)
                if seq_n == -1:
                    assert body == b""
                    return out
                out.append((seq_n, msgspec.msgpack.decode(body, type=_Batch)))
        finally:
            dealer.close(linger=0)

    history = await replay(0)
    assert [s for s, _ in history] == list(range(len(history))) and history  # every batch, in order, from 0
    async with http.post(fleet.url + "/flush_cache") as r:
        assert r.status == 200
    tail = await replay(len(history))
    assert [s for s, _ in tail] == [len(history)]
    assert isinstance(tail[0][1].events[-1], _Cleared)  # a flush publishes AllBlocksCleared
