"""kv_events building blocks: the wire decoder (SGLang and vLLM shapes) and the block index."""

from __future__ import annotations

import msgspec
import pytest

from sglfleet.routing.kv_index import BlockIndex, block_keys
from sglfleet.routing.kv_wire import AllBlocksCleared, BlockRemoved, BlockStored, WireError, decode_batch


def test_decodes_sglang_array_batches_and_vllm_map_batches() -> None:
    sglang = msgspec.msgpack.encode([1.5, [["BlockStored", [11, 12], None, [1, 2, 3, 4], 2, None],
                                           ["BlockRemoved", [11]], ["AllBlocksCleared"], ["Unknown", 1]]])
    ts, events = decode_batch(sglang)
    assert ts == 1.5
    assert events == [BlockStored([11, 12], None, [1, 2, 3, 4], 2), BlockRemoved([11]), AllBlocksCleared()]
    vllm = msgspec.msgpack.encode({"ts": 2.0, "data_parallel_rank": 0, "events": [
        {"type": "BlockStored", "block_hashes": [b"\x01" * 32], "parent_block_hash": None, "token_ids": [5, 6],
         "block_size": 2, "lora_id": None, "medium": "GPU", "lora_name": None},
        {"type": "BlockRemoved", "block_hashes": [b"\x01" * 32], "medium": "GPU"}]})
    _, events = decode_batch(vllm)
    assert events == [BlockStored([b"\x01" * 32], None, [5, 6], 2), BlockRemoved([b"\x01" * 32])]
    for bad in (b"\xc1", msgspec.msgpack.encode("x"), msgspec.msgpack.encode([1.0, [[1, 2]]]),
                msgspec.msgpack.encode([1.0, [["BlockStored", [1], None, [1], 0, None]]])):
        with pytest.raises(WireError):
            decode_batch(bad)


def test_index_follows_store_remove_and_clear_per_worker() -> None:
    idx = BlockIndex()
    tokens = [1, 2, 3, 4, 5, 6]
    keys = block_keys(tokens, 2)
    idx.apply("a", [BlockStored([100, 101], None, [1, 2, 3, 4], 2), BlockStored([102], 101, [5, 6], 2)])
    idx.apply("b", [BlockStored([900], None, [1, 2], 2)])  # b's engine uses other hashes: same keys
    assert idx.match(keys, ["a", "b"]) == {"a": 3, "b": 1}
    assert idx.match(block_keys([1, 2, 9, 9], 2), ["a", "b"]) == {"a": 1, "b": 1}
    idx.apply("a", [BlockRemoved([102])])
    assert idx.match(keys, ["a", "b"]) == {"a": 2, "b": 1}
    res = idx.apply("b", [BlockStored([901], 555, [3, 4], 2)])  # parent never seen: an orphan
    assert res.orphans == 1 and idx.match(keys, ["b"]) == {"b": 1}
    res = idx.apply("a", [AllBlocksCleared()])
    assert res.cleared and idx.blocks("a") == 0
    assert idx.match(keys, ["a", "b"]) == {"a": 0, "b": 1}
    idx.clear("b")
    assert idx.holders == {}


def test_block_keys_chain_on_the_whole_prefix() -> None:
    assert block_keys([1, 2, 3], 2) == block_keys([1, 2], 2)  # partial blocks are not keys
    assert block_keys([9, 9, 3, 4], 2)[1] != block_keys([1, 2, 3, 4], 2)[1]  # same block, other prefix
    assert len(block_keys(list(range(100)), 16, limit=3)) == 3
