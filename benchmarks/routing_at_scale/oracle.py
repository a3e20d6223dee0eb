"""The oracle bound of benchmarks/routing_at_scale (docs/routing.md, "The oracle bound")."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sglfleet.bench.workloads import BenchRequest
from sglfleet.sim.tokenizer import render_chat, tokenize


def belady_hits(seq: list[int], slots: int) -> list[int]:
    """Indices that hit under Belady's MIN (evict the item used farthest in the future) with
    `slots` unit-size items: the most hits any replacement policy can get on `seq`."""
    if slots <= 0:
        return []
    nxt: list[float] = [0.0] * len(seq)
    last: dict[int, float] = {}
    for i in range(len(seq) - 1, -1, -1):
        nxt[i] = last.get(seq[i], float("inf"))
        last[seq[i]] = i
    cache: dict[int, float] = {}  # item -> next use
    hits = []
    for i, g in enumerate(seq):
        if g in cache:
            hits.append(i)
        elif len(cache) >= slots:
            del cache[max(cache, key=cache.__getitem__)]
        cache[g] = nxt[i]
    return hits


def reuse_upper(reqs: list[BenchRequest], rendered: list[list[int]], prefix: dict[int, int]) -> list[int]:
    """Per request: the longest token prefix shared with any earlier request of its group,
    capped at prompt - 1 (the sim, like SGLang, never serves the last prompt token)."""
    earlier: dict[int, list[list[int]]] = defaultdict(list)
    out = []
    for r, toks in zip(reqs, rendered, strict=True):
        g = r.group
        best = 0
        for other in earlier[g]:  # type: ignore[index]
            n = prefix[g]  # type: ignore[index]
            while n < min(len(toks), len(other)) and toks[n] == other[n]:
                n += 1
            best = max(best, n)
        earlier[g].append(toks)  # type: ignore[index]
        out.append(min(best, len(toks) - 1))
    return out


def oracle(reqs: list[BenchRequest], n_workers: int, cache_tokens: int, page: int = 1) -> dict[str, Any]:
    """Upper bound on the token hit rate for this request order and total capacity.

    A hit can reuse at most the group's shared prefix (system text + chat header, P_g sim
    tokens; the question is unique, except for a token that happens to match an earlier
    question of the group, counted too), a miss at most the common chat header (2 tokens). Pool all N caches into one of N x cache_tokens tokens and
    hold only shared prefixes in it (never question/output tails): any real router + N
    per-worker LRU caches is a special case (it may duplicate prefixes and hold tails), so
    Belady's MIN on that pooled cache bounds every policy. Prefixes are almost equal in
    length (range ratio 1), so slots = floor(total / max P_g) unit items. Also ignored,
    so the bound is loose: in-flight reservations, and that a prefix enters the cache only
    when its first request finishes (concurrent first requests all miss).
    """
    rendered = [tokenize(render_chat([{"role": "user", "content": r.turns[0]}])) for r in reqs]
    by_group: dict[int, list[list[int]]] = defaultdict(list)
    for r, toks in zip(reqs, rendered, strict=True):
        by_group[r.group].append(toks)  # type: ignore[index]
    prefix: dict[int, int] = {}
    for g, seqs in by_group.items():
        if len(seqs) == 1:
            # length of the shared part = prompt minus the question (same for every member)
            prefix[g] = len(seqs[0]) - 1
            continue
        n = min(len(t) for t in seqs)
        for t in seqs[1:]:
            k = 0
            while k < n and t[k] == seqs[0][k]:
                k += 1
            n = k
        prefix[g] = n  # common to every member
    total_prompt = sum(len(t) for t in rendered)
    seq = [r.group for r in reqs]  # type: ignore[misc]
    slots = (n_workers * cache_tokens) // max(prefix.values())
    hits = belady_hits(seq, slots)  # type: ignore[arg-type]
    # a hit reuses the shared prefix, plus any question tokens that happen to match an
    # earlier request of the same group (rare, but it keeps this an upper bound)
    best = reuse_upper(reqs, rendered, prefix)
    # every prompt starts with the same chat header ("<|im_start|>user"): any request after
    # the first can reuse it from any worker that served something (a few tokens)
    header = min(prefix.values())
    for t in rendered[1:]:
        k = 0
        while k < header and t[k] == rendered[0][k]:
            k += 1
        header = k
    best = [b - b % page for b in best]  # a paged cache serves whole pages only
    header -= header % page
    hit_set = set(hits)
    hit_tokens = sum(best[i] if i in hit_set else (header if i else 0) for i in range(len(seq)))
    seen: set[int] = set()
    seen_order: list[int] = []
    compulsory_tokens = 0  # every request but the first of its group reuses the prefix
    for g in seq:
        i = len(seen_order)
        if g in seen:
            compulsory_tokens += best[i]
        elif i:
            compulsory_tokens += header
        seen.add(g)  # type: ignore[arg-type]
        seen_order.append(g)
    mean_prefix = sum(prefix[g] for g in seq) / len(seq)  # type: ignore[index]
    return {
        "slots": slots, "distinct_groups": len(seen), "belady_hits": len(hits),
        "hit_rate_bound": hit_tokens / total_prompt,
        "infinite_cache_bound": compulsory_tokens / total_prompt,
        "mean_prefix_tokens": mean_prefix, "mean_prompt_tokens": total_prompt / len(reqs),
    }


