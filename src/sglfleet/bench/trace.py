"""Trace replay: Mooncake-style JSONL rows become timed requests with shared prefix text.

A row (the FAST'25 Mooncake traces' format):

    {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, ...]}

`timestamp` is the arrival in milliseconds since the trace's start; each hash id names one
block of `block_size` prompt tokens (512 in the Mooncake traces). Two rows that share
leading hash ids share that prefix of their prompts. Here every hash id deterministically
maps to one block of plain word tokens, so requests that share blocks share prompt text
(and therefore the server's prefix cache). The prompt is the concatenation of its blocks,
cut or padded (with text unique to the row) to `input_length` tokens.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import orjson

from sglfleet.bench.tokens import Tokenizer
from sglfleet.bench.workloads import BenchRequest

MOONCAKE_BLOCK_SIZE = 512


@dataclass(frozen=True, slots=True)
class TraceRow:
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]


def load_trace(path: str | Path) -> list[TraceRow]:
    """Parse a Mooncake-style JSONL trace; one clear ValueError naming the bad line."""
    file = Path(path).expanduser()
    rows: list[TraceRow] = []
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            rows.append(TraceRow(
                timestamp_ms=float(row.get("timestamp", 0)),
                input_length=int(row["input_length"]),
                output_length=int(row["output_length"]),
                hash_ids=tuple(int(h) for h in row.get("hash_ids") or ()),
            ))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise ValueError(f"{file}:{n}: not a trace row (need timestamp, input_length, "
                             "output_length, hash_ids)") from None
        if rows[-1].input_length < 1 or rows[-1].output_length < 1:
            raise ValueError(f"{file}:{n}: input_length and output_length must be >= 1")
    if not rows:
        raise ValueError(f"{file}: empty trace")
    return rows


def _block(tok: Tokenizer, hash_id: int, block_size: int, seed: int) -> list[int]:
    rng = random.Random(f"{seed}:{hash_id}")
    return tok.sample_words([rng.randrange(1 << 30) for _ in range(block_size)])


def build_trace_workload(
    rows: list[TraceRow],
    tok: Tokenizer,
    *,
    block_size: int = MOONCAKE_BLOCK_SIZE,
    seed: int = 42,
    num_requests: int | None = None,
) -> list[BenchRequest]:
    """One BenchRequest per row (the first `num_requests`), arrival offsets in `at_s`."""
    if block_size < 1:
        raise ValueError("--trace-block-size must be >= 1")
    chosen = rows[:num_requests] if num_requests else rows
    t_first = min(r.timestamp_ms for r in chosen)
    blocks: dict[int, list[int]] = {}
    requests = []
    for i, row in enumerate(chosen):
        ids: list[int] = []
        for h in row.hash_ids:
            if len(ids) >= row.input_length:
                break
            if h not in blocks:
                blocks[h] = _block(tok, h, block_size, seed)
            ids.extend(blocks[h])
        if len(ids) < row.input_length:  # tail not covered by any block: unique to this row
            rng = random.Random(f"{seed}:row:{i}")
            missing = row.input_length - len(ids)
            ids.extend(tok.sample_words([rng.randrange(1 << 30) for _ in range(missing)]))
        text = tok.decode(ids[: row.input_length])
        requests.append(BenchRequest(i, (text,), tok.count(text), row.output_length,
                                     at_s=(row.timestamp_ms - t_first) / 1000.0))
    return requests
