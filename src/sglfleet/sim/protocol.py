"""Request parsing for the OpenAI and native routes, and SGLang's error body.

Bodies are read as plain JSON (orjson) and checked by hand: the sim must stay cheap per
request. Anything malformed raises `BadRequest`, which the routes turn into a 400 with
SGLang's error shape `{"object": "error", "message", "type", "param", "code"}`.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from sglfleet.sim.config import SimConfig
from sglfleet.sim.request import Bootstrap, GenParams
from sglfleet.sim.tokenizer import render_chat, split_answer, tokenize

_ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


class BadRequest(ValueError):
    pass


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "object": "error",
        "message": message,
        "type": _ERROR_TYPES.get(status, "Error"),
        "param": None,
        "code": status,
    }
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise BadRequest("Content-Type must be application/json")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _int(body: dict[str, Any], name: str, default: int | None, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{name}' must be an integer")
    if value < minimum:
        raise BadRequest(f"'{name}' must be >= {minimum}")
    return value


def _bootstrap(body: dict[str, Any]) -> Bootstrap | None:
    room = body.get("bootstrap_room")
    if room is None:
        return None
    host, port = body.get("bootstrap_host"), body.get("bootstrap_port")
    if isinstance(room, list) or isinstance(host, list) or isinstance(port, list):
        raise BadRequest("batched bootstrap fields are not supported by the sim")
    if isinstance(room, bool) or not isinstance(room, int):
        raise BadRequest("'bootstrap_room' must be an integer")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise BadRequest("'bootstrap_port' must be an integer or null")
    if host is not None and not isinstance(host, str):
        raise BadRequest("'bootstrap_host' must be a string or null")
    return Bootstrap(host=host, port=port, room=room)


def _common(body: dict[str, Any], prompt_ids: list[int], max_new: int, text: str | None = None) -> GenParams:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise BadRequest("'stream_options' must be an object")
    rid = body.get("rid")
    if rid is not None and not isinstance(rid, str):
        raise BadRequest("'rid' must be a string")
    seed_ids, offset = prompt_ids, 0
    if text is not None:  # output words at the end: a continuation (sim/tokenizer.py)
        base, offset = split_answer(text)
        if offset:
            seed_ids = tokenize(base)
    return GenParams(
        prompt_ids=prompt_ids,
        seed_ids=seed_ids,
        offset=offset,
        max_new_tokens=max_new,
        stream=stream,
        ignore_eos=bool(body.get("ignore_eos", False)),
        include_usage=bool(opts.get("include_usage", False)),
        rid=rid,
        bootstrap=_bootstrap(body),
    )


def _check_openai(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    if model and ":" in model:
        raise BadRequest(f"The requested LoRA adapters are not loaded: {model.split(':', 1)[1]}")
    _int(body, "n", 1, 1)  # n > 1: sim/features.py


def parse_chat(body: dict[str, Any], cfg: SimConfig) -> GenParams:
    _check_openai(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    cont = body.get("continue_final_message", False)
    if not isinstance(cont, bool):
        raise BadRequest("'continue_final_message' must be a boolean")
    try:
        prompt = render_chat(messages, continue_final=cont)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    max_new = _int(body, "max_completion_tokens", None, 1)
    if max_new is None:
        max_new = _int(body, "max_tokens", cfg.default_max_tokens, 1)
    assert max_new is not None
    return _common(body, tokenize(prompt), max_new, prompt)


def parse_completion(body: dict[str, Any], cfg: SimConfig) -> GenParams:
    _check_openai(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompt = max(prompt, key=len)  # a list of prompts: one choice each (sim/features.py)
    elif isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], list):
        prompt = prompt[0]
    text = prompt if isinstance(prompt, str) else None
    if isinstance(prompt, str):
        ids = tokenize(prompt)
    elif isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt):
        ids = list(prompt)
    else:
        raise BadRequest("'prompt' must be a string, a list of strings, or token ids")
    max_new = _int(body, "max_tokens", cfg.default_max_tokens, 1)
    assert max_new is not None
    return _common(body, ids, max_new, text)


def parse_generate(body: dict[str, Any], cfg: SimConfig) -> GenParams:
    text, input_ids = body.get("text"), body.get("input_ids")
    if isinstance(text, str):
        ids = tokenize(text)
    elif isinstance(input_ids, list) and input_ids and all(type(t) is int for t in input_ids):
        ids = list(input_ids)
    elif isinstance(text, list) or (
        isinstance(input_ids, list) and input_ids and isinstance(input_ids[0], list)
    ):
        raise BadRequest("batched /generate requests are not supported by the sim")
    else:
        raise BadRequest("'text' (string) or 'input_ids' (list of ints) is required")
    sampling = body.get("sampling_params") or {}
    if not isinstance(sampling, dict):
        raise BadRequest("'sampling_params' must be an object")
    max_new = _int(sampling, "max_new_tokens", cfg.default_max_tokens, 1)
    assert max_new is not None
    params = _common(body, ids, max_new, text if isinstance(text, str) else None)
    if sampling.get("ignore_eos"):
        params = GenParams(**{**params.__dict__, "ignore_eos": True})
    return params
