"""The OpenAI Responses API on the same fleet (Codex CLI, the newer OpenAI SDK agents).

    POST   /v1/responses        -> /v1/chat/completions (streamed or not)
    GET    /v1/responses/{id}   a stored response
    DELETE /v1/responses/{id}   forget it

A request is translated (`responses_translate`), sent through `openai.forward` (auth, task
routes, limiter, policy, retries, metrics, access log: the same path as /v1/chat/completions)
and the relayed bytes are rewritten by `responses_stream.ResponseBuilder`. With `store` (the
default) the finished response and its conversation are kept in a bounded in-memory store with
a TTL (`responses_store`), which is what `previous_response_id` reads. Errors are OpenAI's
error shape.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sglfleet.api.adapter import RelayAdapter, json_body, upstream_error_message
from sglfleet.api.body import validate
from sglfleet.api.openai import fleet_of, json_response
from sglfleet.api.responses_store import ResponseStore
from sglfleet.api.responses_stream import ResponseBuilder, assistant_message, whole_response
from sglfleet.api.responses_translate import ResponsesRequest, chat_body, input_messages
from sglfleet.api.translated import authorize, dispatch_chat, read_json, rejected, resolve
from sglfleet.core.errors import GatewayError, error_body


class ResponseNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "response_not_found"


def _store(request: Request) -> ResponseStore:
    return request.app.state.responses_store  # type: ignore[no-any-return]


def _echo(req: ResponsesRequest) -> dict[str, Any]:
    """The request fields a Response object repeats."""
    return {
        "model": req.model, "instructions": req.instructions, "previous_response_id": req.previous_response_id,
        "tools": list(req.tools or []),
        "tool_choice": (req.tool_choice.model_dump() if req.tool_choice is not None and
                        not isinstance(req.tool_choice, str) else req.tool_choice or "auto"),
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "temperature": req.temperature, "top_p": req.top_p, "max_output_tokens": req.max_output_tokens,
        "store": req.store, "metadata": dict(req.metadata or {}), "user": req.user, "truncation": "disabled",
        "text": req.text.model_dump(by_alias=True, exclude_none=True) if req.text and req.text.format
        else {"format": {"type": "text"}},
        "reasoning": req.reasoning.model_dump() if req.reasoning else None,
    }


def _whole(builder: ResponseBuilder, status: int, body: bytes) -> tuple[int, bytes]:
    if status >= 400:
        return status, orjson.dumps(error_body(status, upstream_error_message(body, status), "upstream_error"))
    data = json_body(status, body)
    if data is None:
        return 502, orjson.dumps(error_body(502, "the engine returned a body that is not a JSON object",
                                            "upstream_error", code="upstream_protocol_error"))
    return 200, orjson.dumps(whole_response(builder, data))


async def create(request: Request) -> Any:
    """POST /v1/responses; errors raised here go through the gateway's one handler (OpenAI shape)."""
    t0 = time.perf_counter()
    fleet = fleet_of(request)
    model = "-"
    store = _store(request)
    try:
        authorize(request, fleet)
        req: ResponsesRequest = validate(ResponsesRequest, await read_json(request, fleet))  # type: ignore[assignment]
        history: list[dict[str, Any]] = []
        if req.previous_response_id is not None:
            prev = store.get(req.previous_response_id)
            if prev is None:
                raise ResponseNotFound(
                    f"previous response {req.previous_response_id!r} not found: responses are kept in this "
                    f"gateway process's memory for {store.ttl_s:g}s; send the whole conversation instead",
                    param="previous_response_id")
            history = [dict(m) for m in prev.messages]
        history += input_messages(req.input)
        target = await resolve(fleet, req.model, history, "/v1/responses")
        model = target.pool.name
        body = chat_body(req, target.pool.cfg, history)
        relay = await dispatch_chat(request, fleet, target, body, "responses", t0)
    except GatewayError as exc:
        rejected(fleet, request, model, "responses", exc, time.perf_counter() - t0)
        raise

    def keep(final: dict[str, Any]) -> None:
        if not req.store:
            return
        answer = assistant_message(final["output"])
        store.put(final, history + ([answer] if answer else []))

    builder = ResponseBuilder(_echo(req), on_done=keep)
    if req.stream:
        return RelayAdapter(relay, stream=builder)
    return RelayAdapter(relay, whole=lambda status, raw: _whole(builder, status, raw))


def _authorized_store(request: Request) -> ResponseStore:
    authorize(request, fleet_of(request))
    return _store(request)


async def retrieve(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    stored = _authorized_store(request).get(response_id)
    if stored is None:
        raise ResponseNotFound(f"response {response_id!r} not found (or expired)", param="response_id")
    return json_response(stored.response)


async def delete(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    if not _authorized_store(request).delete(response_id):
        raise ResponseNotFound(f"response {response_id!r} not found (or expired)", param="response_id")
    return json_response({"id": response_id, "object": "response", "deleted": True})


def register(app: Any) -> None:
    app.state.responses_store = ResponseStore()
    app.add_route("/v1/responses", create, methods=["POST"])
    app.add_route("/v1/responses/{response_id}", retrieve, methods=["GET"])
    app.add_route("/v1/responses/{response_id}", delete, methods=["DELETE"])
