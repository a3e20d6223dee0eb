"""`POST /v1/embeddings` (OpenAI), on the same dispatch path as chat (which models serve it:
api/serves.py).

Request: `input` as a string, a list of strings, token ids, or lists of token ids;
`encoding_format` float (default) or base64; `dimensions` passed to engines that take it.
The engine is always asked for floats; base64 (what the openai SDK asks for by default) is
encoded here: little-endian float32, as OpenAI does. llama.cpp without a pooling layer returns
one vector per token: those are mean-pooled and L2-normalised here, so clients always get one
vector per input. llama.cpp takes neither token ids nor `dimensions`: 400 naming the parameter.
"""

from __future__ import annotations

import base64
import math
import struct
import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request

from sglfleet.api.adapter import RelayAdapter, StaticRelay, json_body, run_relay, upstream_error_message
from sglfleet.api.body import parse_json_object, read_body, validate
from sglfleet.api.openai import fleet_of, forward, record_rejection
from sglfleet.api.serves import require_embedding
from sglfleet.core.auth import check_api_key
from sglfleet.core.errors import BadRequest, ClientGone, GatewayError, error_body
from sglfleet.fleet import Fleet
from sglfleet.routing.policies import RouteContext
from sglfleet.routing.pool import ModelPool

TokenIds = list[StrictInt]
EmbeddingInput = StrictStr | list[StrictStr] | TokenIds | list[TokenIds]


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: StrictStr = Field(min_length=1, max_length=512)
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(None, ge=1)
    user: StrictStr | None = None


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and (
        isinstance(value[0], int) or (isinstance(value[0], list)))


def upstream_body(pool: ModelPool, client_model: str, inputs: Any, dimensions: int | None,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body sent to the engine (floats always), after the engine's contract is checked."""
    engine, contract = pool.cfg.engine, pool.engine.contract
    if isinstance(inputs, list) and not inputs:
        raise BadRequest("'input' must not be empty", param="input")
    if _token_ids(inputs) and not contract.embedding_token_ids:
        raise BadRequest(f"token-id input is not supported by the {engine} engine of {pool.name!r}; "
                         "send text", param="input")
    if dimensions is not None and not contract.embedding_dimensions:
        raise BadRequest(f"'dimensions' is not supported by the {engine} engine of {pool.name!r}",
                         param="dimensions")
    body: dict[str, Any] = {**(extra or {}), "model": client_model, "input": inputs, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def input_text(inputs: Any) -> str:
    """The text routing policies see (token ids route on nothing)."""
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, list):
        return " ".join(i for i in inputs if isinstance(i, str))
    return ""


def pooled(vector: Any) -> list[float]:
    """One vector per input: per-token vectors (llama.cpp without pooling) are mean-pooled and
    L2-normalised; a single vector is returned as is."""
    if not isinstance(vector, list) or not vector or not isinstance(vector[0], list):
        return vector if isinstance(vector, list) else []
    n = len(vector)
    mean = [sum(col) / n for col in zip(*vector, strict=False)]
    norm = math.sqrt(sum(x * x for x in mean)) or 1.0
    return [x / norm for x in mean]


def base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine's `data` rows in input order, one pooled vector each."""
    out = sorted((d for d in data.get("data") or () if isinstance(d, dict)), key=lambda d: d.get("index", 0))
    return [{**d, "embedding": pooled(d.get("embedding"))} for d in out]


def openai_embeddings(client_model: str, encoding: str, data: dict[str, Any]) -> dict[str, Any]:
    out = []
    for i, row in enumerate(rows(data)):
        vec = row["embedding"]
        out.append({"object": "embedding", "index": i,
                    "embedding": base64_floats(vec) if encoding == "base64" else vec})
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    return {"object": "list", "data": out, "model": client_model,
            "usage": {"prompt_tokens": prompt, "total_tokens": int(usage.get("total_tokens") or prompt)}}


def _openai_whole(client_model: str, encoding: str, status: int, body: bytes) -> tuple[int, bytes]:
    if status >= 400:
        return status, orjson.dumps(error_body(status, upstream_error_message(body, status),
                                               "upstream_error" if status >= 500 else "invalid_request_error"))
    data = json_body(status, body)
    if data is None:
        return 502, orjson.dumps(error_body(502, "the engine returned a body that is not a JSON object",
                                            "upstream_error", code="upstream_protocol_error"))
    return 200, orjson.dumps(openai_embeddings(client_model, encoding, data))


async def dispatch(request: Request, fleet: Fleet, pool: ModelPool, body: dict[str, Any], t0: float,
                   endpoint: str) -> Any:
    """The relay of the engine's answer. llama.cpp gets one input per request: llama-cpp-python
    0.3.36 misplaces the per-token vectors of every input after the first in a batch (its
    read offset counts tokens, not floats), so the gateway sends them one by one and joins
    the rows (each request goes through `forward`: counted, logged, limited like any other)."""
    inputs = body["input"]
    if pool.engine.contract.embedding_batch or not isinstance(inputs, list) or len(inputs) < 2:
        ctx = RouteContext(text=input_text(inputs), routing_key=None)
        return await forward(request, fleet, pool, body, "/v1/embeddings", endpoint, ctx, t0)
    data: list[dict[str, Any]] = []
    tokens = 0
    for i, one in enumerate(inputs):
        relay = await forward(request, fleet, pool, {**body, "input": [one]}, "/v1/embeddings", endpoint,
                              RouteContext(text=input_text(one), routing_key=None), t0)
        status, raw = await run_relay(relay, request.scope, request.receive)
        part = json_body(status, raw)
        if part is None:
            return StaticRelay(status if status >= 400 else 502, raw)
        data += [{**row, "index": i} for row in rows(part)[:1]]
        usage = part.get("usage") if isinstance(part.get("usage"), dict) else {}
        tokens += int(usage.get("prompt_tokens") or 0)
    joined = {"object": "list", "data": data, "model": body["model"],
              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return StaticRelay(200, orjson.dumps(joined))


async def embeddings(request: Request) -> Any:
    """POST /v1/embeddings; errors in OpenAI's shape (raised: the gateway's one handler maps them)."""
    t0 = time.perf_counter()
    fleet = fleet_of(request)
    gw = fleet.cfg.gateway
    model = "-"
    try:
        check_api_key(request.headers.get("authorization"), gw.api_keys, gw.admin_keys)
        req: EmbeddingsRequest = validate(  # type: ignore[assignment]
            EmbeddingsRequest, parse_json_object(await read_body(request, gw.max_body_bytes)))
        pool = fleet.registry.resolve(req.model)
        model = pool.name
        require_embedding(fleet, pool, req.model)
        body = upstream_body(pool, req.model, req.input, req.dimensions)
        relay = await dispatch(request, fleet, pool, body, t0, "embeddings")
    except GatewayError as exc:
        if not isinstance(exc, ClientGone):
            record_rejection(fleet, request, model, "embeddings", exc, time.perf_counter() - t0)
        raise
    return RelayAdapter(relay, whole=lambda status, raw: _openai_whole(req.model, req.encoding_format, status, raw))


def register(app: Any) -> None:
    app.add_route("/v1/embeddings", embeddings, methods=["POST"])
