"""Workloads: lists of `BenchRequest`s built ahead of the run, deterministic for a seed.

Lengths are in tokens of the given tokenizer (exact for a GGUF tokenizer, labelled
approximate otherwise). The server adds its chat template, so its reported prompt
tokens (`usage.prompt_tokens`) are a little higher than `input_tokens` for chat.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from sglfleet.bench.tokens import Tokenizer

WORKLOADS = ("random", "shared-prefix", "long-context", "multi-turn", "file")


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """One unit of load: a single prompt, or a conversation whose turns run in order."""

    index: int
    turns: tuple[str, ...]  # user messages; more than one = multi-turn conversation
    input_tokens: int  # tokens of the first turn, counted client-side
    output_tokens: int  # requested max_tokens per turn
    group: int | None = None  # shared-prefix group
    at_s: float | None = None  # trace replay: arrival offset from the trace's start (s)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadSpec:
    kind: str = "random"
    num_requests: int = 16
    input_len: int = 256
    output_len: int = 128
    range_ratio: float = 1.0  # SGLang semantics: lengths drawn from [max(1, L*r), L]
    seed: int = 42
    # shared-prefix (SGLang generated-shared-prefix)
    gsp_num_groups: int = 4
    gsp_prompts_per_group: int = 4
    gsp_system_prompt_len: int = 512
    gsp_question_len: int = 64
    gsp_zipf_alpha: float | None = None  # None: uniform, each group exactly prompts_per_group
    gsp_ordered: bool = False
    # multi-turn
    num_turns: int = 3
    # file
    dataset_path: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def random_lengths(rng: random.Random, length: int, ratio: float, n: int) -> list[int]:
    """SGLang's compute_random_lens: uniform integers in [max(int(L*ratio), 1), L]."""
    low = max(int(length * ratio), 1)
    return [rng.randint(low, max(length, low)) for _ in range(n)]


def random_text(tok: Tokenizer, rng: random.Random, num_tokens: int) -> str:
    """Text of exactly `num_tokens` tokens (re-encoded and trimmed/padded until it fits)."""
    if num_tokens <= 0:
        return ""
    ids = tok.sample_words([rng.randrange(1 << 30) for _ in range(num_tokens)])
    text = tok.decode(ids)
    for _ in range(10):
        ids = tok.encode(text)
        if len(ids) == num_tokens:
            break
        if len(ids) > num_tokens:
            ids = ids[:num_tokens]
        else:
            missing = num_tokens - len(ids)
            ids = ids + tok.sample_words([rng.randrange(1 << 30) for _ in range(missing)])
        text = tok.decode(ids)
    return text.strip() if tok.count(text.strip()) == num_tokens else text


def build_workload(spec: WorkloadSpec, tok: Tokenizer) -> list[BenchRequest]:
    rng = random.Random(spec.seed)
    if spec.kind == "random":
        return _random(spec, tok, rng)
    if spec.kind == "shared-prefix":
        return _shared_prefix(spec, tok, rng)
    if spec.kind == "long-context":
        return _random(spec, tok, rng)
    if spec.kind == "multi-turn":
        return _multi_turn(spec, tok, rng)
    if spec.kind == "file":
        return _from_file(spec, tok, rng)
    raise ValueError(f"unknown workload {spec.kind!r}; choose one of {', '.join(WORKLOADS)}")


def _random(spec: WorkloadSpec, tok: Tokenizer, rng: random.Random) -> list[BenchRequest]:
    in_lens = random_lengths(rng, spec.input_len, spec.range_ratio, spec.num_requests)
    out_lens = random_lengths(rng, spec.output_len, spec.range_ratio, spec.num_requests)
    requests = []
    for i, (n_in, n_out) in enumerate(zip(in_lens, out_lens, strict=True)):
        text = random_text(tok, rng, n_in)
        requests.append(BenchRequest(i, (text,), tok.count(text), n_out))
    return requests


def zipf_groups(rng: random.Random, num_groups: int, num_slots: int, alpha: float) -> list[int]:
    """Each slot draws a group with p(rank) proportional to 1/rank**alpha (rank = group+1)."""
    if alpha <= 0:
        raise ValueError("--gsp-zipf-alpha must be > 0")
    weights = [1.0 / (rank**alpha) for rank in range(1, num_groups + 1)]
    return rng.choices(range(num_groups), weights=weights, k=num_slots)


def _shared_prefix(spec: WorkloadSpec, tok: Tokenizer, rng: random.Random) -> list[BenchRequest]:
    # SGLang generated-shared-prefix: G system prompts, G*P questions, prompt =
    # system + "\n\n" + question as ONE user message; total = G*P (num_requests ignored).
    num_groups, per_group = spec.gsp_num_groups, spec.gsp_prompts_per_group
    total = num_groups * per_group
    sys_lens = random_lengths(rng, spec.gsp_system_prompt_len, spec.range_ratio, num_groups)
    q_lens = random_lengths(rng, spec.gsp_question_len, spec.range_ratio, total)
    out_lens = random_lengths(rng, spec.output_len, spec.range_ratio, total)
    systems = [random_text(tok, rng, n) for n in sys_lens]
    questions = [random_text(tok, rng, n) for n in q_lens]
    if spec.gsp_zipf_alpha is None:
        groups = [g for g in range(num_groups) for _ in range(per_group)]
    else:
        groups = zipf_groups(random.Random(spec.seed), num_groups, total, spec.gsp_zipf_alpha)
    slots = list(range(total))
    if not spec.gsp_ordered:
        rng.shuffle(slots)
    requests = []
    for i, slot in enumerate(slots):
        group = groups[slot]
        prompt = systems[group] + "\n\n" + questions[slot]
        requests.append(BenchRequest(i, (prompt,), tok.count(prompt), out_lens[slot], group))
    return requests


def _multi_turn(spec: WorkloadSpec, tok: Tokenizer, rng: random.Random) -> list[BenchRequest]:
    requests = []
    for i in range(spec.num_requests):
        lens = random_lengths(rng, spec.input_len, spec.range_ratio, spec.num_turns)
        turns = tuple(random_text(tok, rng, n) for n in lens)
        requests.append(BenchRequest(i, turns, tok.count(turns[0]), spec.output_len))
    return requests


def _from_file(spec: WorkloadSpec, tok: Tokenizer, rng: random.Random) -> list[BenchRequest]:
    """JSONL of {"prompt": str} / {"messages": [...]} / ShareGPT rows, or a ShareGPT JSON list.

    An optional "output_len" (or "max_tokens") per row overrides --output-len; ShareGPT rows
    take their output length from the first reply unless --output-len is given explicitly
    (`extra["output_len_given"] == "1"`). Rows are used in file order and cycled.
    """
    if not spec.dataset_path:
        raise ValueError("--workload file needs --dataset-path FILE (.jsonl or ShareGPT .json)")
    path = Path(spec.dataset_path).expanduser()
    raw = path.read_text(encoding="utf-8")
    rows = json.loads(raw) if raw.lstrip().startswith("[") else [
        json.loads(line) for line in raw.splitlines() if line.strip()
    ]
    prompts: list[tuple[str, int]] = []
    for row in rows:
        parsed = _parse_row(row, spec, tok)
        if parsed is not None:
            prompts.append(parsed)
    if not prompts:
        raise ValueError(f"{path}: no usable prompts (need 'prompt', 'messages' or ShareGPT rows)")
    requests = []
    for i in range(spec.num_requests):
        text, n_out = prompts[i % len(prompts)]
        requests.append(BenchRequest(i, (text,), tok.count(text), n_out))
    return requests


def _parse_row(row: object, spec: WorkloadSpec, tok: Tokenizer) -> tuple[str, int] | None:
    if not isinstance(row, dict):
        return None
    out = row.get("output_len", row.get("max_tokens"))
    if isinstance(row.get("prompt"), str):
        return row["prompt"], int(out or spec.output_len)
    if isinstance(row.get("messages"), list):
        users = [m.get("content") for m in row["messages"] if m.get("role") == "user"]
        texts = [u for u in users if isinstance(u, str)]
        return (texts[0], int(out or spec.output_len)) if texts else None
    turns = row.get("conversations") or row.get("conversation")
    if isinstance(turns, list) and len(turns) >= 2:
        prompt, reply = str(turns[0].get("value", "")), str(turns[1].get("value", ""))
        if not prompt:
            return None
        given = spec.extra.get("output_len_given") == "1"
        n_out = spec.output_len if given else max(tok.count(reply), 1)
        return prompt, n_out
    return None
