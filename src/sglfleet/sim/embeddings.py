"""`POST /v1/embeddings`, as SGLang serves it when started with `--is-embedding`.

Vectors are deterministic bags of tokens: each token id seeds a fixed pseudo-random vector,
an input's vector is their L2-normalised sum. Same text, same vector in every process; texts
sharing tokens point in similar directions, so similarity tests mean something. `input` is a
string, a list of strings, token ids or lists of token ids; `dimensions` keeps the first n
components and re-normalises (Matryoshka-style); `encoding_format` float or base64.
"""

from __future__ import annotations

import base64
import math
import random
import struct
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sglfleet.sim.protocol import BadRequest, error_response, read_json
from sglfleet.sim.tokenizer import tokenize

if TYPE_CHECKING:
    from sglfleet.sim.server import SimWorker

DIM = 64


@lru_cache(maxsize=65536)
def _token_vector(token: int) -> tuple[float, ...]:
    rng = random.Random(token)
    return tuple(rng.gauss(0.0, 1.0) for _ in range(DIM))


def embed_ids(ids: list[int], dimensions: int | None = None) -> list[float]:
    acc = [0.0] * DIM
    for t in ids:
        for i, x in enumerate(_token_vector(t)):
            acc[i] += x
    vec = acc[: dimensions or DIM]
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


def _inputs(value: Any) -> list[list[int]]:
    if isinstance(value, str):
        return [tokenize(value)]
    if isinstance(value, list) and value and all(type(t) is int for t in value):
        return [list(value)]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [tokenize(v) for v in value]
    if isinstance(value, list) and value and all(
            isinstance(v, list) and v and all(type(t) is int for t in v) for v in value):
        return [list(v) for v in value]
    raise BadRequest("'input' must be a string, a list of strings, token ids or lists of token ids")


def parse(body: dict[str, Any]) -> tuple[list[list[int]], int | None, str]:
    ids = _inputs(body.get("input"))
    dims = body.get("dimensions")
    if dims is not None and (type(dims) is not int or not 1 <= dims <= DIM):
        raise BadRequest(f"'dimensions' must be an integer between 1 and {DIM}")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'")
    return ids, dims, fmt


async def handle(worker: SimWorker, request: web.Request) -> web.StreamResponse:
    try:
        ids, dims, fmt = parse(await read_json(request))
    except BadRequest as exc:
        return error_response(400, str(exc))
    data = []
    for i, toks in enumerate(ids):
        vec = embed_ids(toks, dims)
        out: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if fmt == "base64" else vec
        data.append({"object": "embedding", "index": i, "embedding": out})
    n = sum(len(t) for t in ids)
    body = {"object": "list", "data": data, "model": worker.config.model_name,
            "usage": {"prompt_tokens": n, "total_tokens": n}}
    return web.Response(body=orjson.dumps(body), content_type="application/json")
