"""The Anthropic Messages API on the same fleet: Claude Code and other Anthropic-SDK agents
point `ANTHROPIC_BASE_URL` at the gateway and use the fleet's models.

    POST /v1/messages               -> /v1/chat/completions (streamed or not)
    POST /v1/messages/count_tokens  -> {"input_tokens": n}

A request is translated (`anthropic_translate`), sent through `openai.forward` (auth, task
routes, limiter, policy, retries, metrics, access log: the same path as /v1), and the relayed
bytes are rewritten by `anthropic_stream.MessageBuilder`. The key is read from `x-api-key`
(what the Anthropic SDKs send) or `Authorization: Bearer`. Errors are Anthropic's
`{"type": "error", "error": {"type", "message"}}` with the gateway's status codes.

count_tokens: llama.cpp models are counted in the gateway (the GGUF's tokenizer and chat
template, no engine call); other engines are asked for a 1-token completion and their
`usage.prompt_tokens` is returned, so the count is the engine's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sglfleet.api.adapter import RelayAdapter, json_body, run_relay, upstream_error_message
from sglfleet.api.anthropic_stream import MessageBuilder, error_object, whole_message
from sglfleet.api.anthropic_translate import (
    CountTokensRequest,
    MessagesRequest,
    chat_body,
    openai_messages,
    wants_thinking,
)
from sglfleet.api.body import validate
from sglfleet.api.openai import fleet_of
from sglfleet.api.translated import authorize, dispatch_chat, read_json, rejected, resolve
from sglfleet.core.errors import GatewayError, UpstreamProtocolError

log = logging.getLogger("sglfleet.api")


def anthropic_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(error_object(status, message)), status, headers=headers,
                    media_type="application/json")


def _whole(builder: MessageBuilder, status: int, body: bytes) -> tuple[int, bytes]:
    if status >= 400:
        return status, orjson.dumps(error_object(status, upstream_error_message(body, status)))
    data = json_body(status, body)
    if data is None:
        return 502, orjson.dumps(error_object(502, "the engine returned a body that is not a JSON object"))
    return 200, orjson.dumps(whole_message(builder, data))


async def messages(request: Request) -> Any:
    t0 = time.perf_counter()
    fleet = fleet_of(request)
    model = "-"
    try:
        authorize(request, fleet, x_api_key=True)
        req: MessagesRequest = validate(MessagesRequest, await read_json(request, fleet))  # type: ignore[assignment]
        target = await resolve(fleet, req.model, openai_messages(req), "/v1/messages")
        model = target.pool.name
        body = chat_body(req, target.pool.cfg, stream=req.stream)
        relay = await dispatch_chat(request, fleet, target, body, "messages", t0)
    except GatewayError as exc:
        rejected(fleet, request, model, "messages", exc, time.perf_counter() - t0)
        return anthropic_error(exc.status, exc.message, exc.headers)
    builder = MessageBuilder(f"msg_{uuid.uuid4().hex[:24]}", req.model,
                             show_thinking=wants_thinking(req) is not False, stop_sequences=req.stop_sequences)
    if req.stream:
        return RelayAdapter(relay, stream=builder)
    return RelayAdapter(relay, whole=lambda status, raw: _whole(builder, status, raw))


async def _engine_count(request: Request, relay: Any) -> int:
    """Run a non-streamed relay to its end and read `usage.prompt_tokens` from its body."""
    data = json_body(*await run_relay(relay, request.scope, request.receive))
    usage = data.get("usage") if data else None
    if not isinstance(usage, dict) or not isinstance(usage.get("prompt_tokens"), int):
        raise UpstreamProtocolError("the engine reported no prompt token count")
    return int(usage["prompt_tokens"])


async def count_tokens(request: Request) -> Response:
    t0 = time.perf_counter()
    fleet = fleet_of(request)
    model = "-"
    try:
        authorize(request, fleet, x_api_key=True)
        req: CountTokensRequest = validate(CountTokensRequest, await read_json(request, fleet))  # type: ignore[assignment]
        target = await resolve(fleet, req.model, openai_messages(req), "/v1/messages/count_tokens")
        model = target.pool.name
        body = chat_body(req, target.pool.cfg, stream=False)
        counter = fleet.prompt_counter(target.pool)
        counted = await asyncio.to_thread(counter.count, dict(body)) if counter is not None else None
        if counted is None:
            body["max_tokens"] = 1
            counted = await _engine_count(request, await dispatch_chat(request, fleet, target, body,
                                                                       "count_tokens", t0))
        else:
            fleet.metrics.observe_request(model, "count_tokens", 200, time.perf_counter() - t0)
    except GatewayError as exc:
        rejected(fleet, request, model, "count_tokens", exc, time.perf_counter() - t0)
        return anthropic_error(exc.status, exc.message, exc.headers)
    return Response(orjson.dumps({"input_tokens": counted}), media_type="application/json")


def register(app: Any) -> None:
    app.add_route("/v1/messages", messages, methods=["POST"])
    app.add_route("/v1/messages/count_tokens", count_tokens, methods=["POST"])
