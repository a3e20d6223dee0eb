"""The OpenAI features SGLang serves beyond plain text, as the sim plays them: structured
output (`response_format` json_object / json_schema: the answer is a JSON document valid
against the schema), tool calls (`tool_choice` required / named, or `auto` when the last turn
is the user's), `n` choices, `logprobs` and lists of prompts on /v1/completions.

Such requests are answered at once (no simulated GPU timing): they exist so that clients
and the gateway can be tested against an SGLang-shaped engine, not for load tests.
"""

from __future__ import annotations

import random
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from sglfleet.sim.protocol import BadRequest
from sglfleet.sim.responses import DONE, sse
from sglfleet.sim.tokenizer import render_chat, tokenize

_FORMATS = ("text", "json_object", "json_schema", "structural_tag")


@dataclass(slots=True)
class Features:
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    schema: dict[str, Any] | None = None  # JSON output (json_object: {})
    tool: dict[str, Any] | None = None  # the function to call
    prompts: list[str] = field(default_factory=list)  # /v1/completions: one choice per prompt


def parse(body: dict[str, Any], chat: bool) -> Features | None:
    """The features a request asks for; None for a plain request (the engine path)."""
    f = Features()
    n = body.get("n")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise BadRequest("'n' must be an integer >= 1")
        f.n = n
    lp = body.get("logprobs")
    f.logprobs = bool(lp) if chat else lp is not None and lp is not False
    top = body.get("top_logprobs") if chat else (lp if isinstance(lp, int) and not isinstance(lp, bool) else 0)
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20):
        raise BadRequest("'top_logprobs' must be an integer between 0 and 20")
    f.top_logprobs = top or 0
    if chat:
        _response_format(body.get("response_format"), f)
        _tools(body, f)
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, str) for p in prompt):
            f.prompts = list(prompt)
    plain = f.n == 1 and not f.logprobs and f.schema is None and f.tool is None and not f.prompts
    return None if plain else f


def _response_format(rf: Any, f: Features) -> None:
    if rf is None:
        return
    if not isinstance(rf, dict) or rf.get("type") not in _FORMATS:
        raise BadRequest(f"response_format.type must be one of {', '.join(_FORMATS)}")
    if rf["type"] == "json_object":
        f.schema = rf.get("schema") if isinstance(rf.get("schema"), dict) else {}
    elif rf["type"] == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise BadRequest("response_format.json_schema must be an object with a 'name'")
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be an object")
        f.schema = schema


def _tools(body: dict[str, Any], f: Features) -> None:
    tools, choice = body.get("tools") or [], body.get("tool_choice")
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be a list")
    fns = [t.get("function") for t in tools if isinstance(t, dict)]
    if any(not isinstance(fn, dict) or not isinstance(fn.get("name"), str) for fn in fns) or len(fns) != len(tools):
        raise BadRequest("each tool must be {type: function, function: {name, parameters}}")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        match = [fn for fn in fns if fn["name"] == name]
        if not match:
            raise BadRequest(f"tool_choice names {name!r}, which is not in tools")
        f.tool = match[0]
    elif choice == "required" or (choice in (None, "auto") and fns and _user_turn_last(body)):
        if not fns:
            raise BadRequest("tool_choice 'required' needs tools")
        f.tool = fns[0]
    elif choice not in (None, "auto", "none"):
        raise BadRequest("tool_choice must be none, auto, required or a named function")


def _user_turn_last(body: dict[str, Any]) -> bool:
    msgs = body.get("messages") or []
    return bool(msgs) and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "user"


def instance(schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small JSON document valid against `schema` (the subset clients send: $ref/$defs,
    anyOf/oneOf/allOf, enum/const, objects, arrays, strings, numbers, booleans, null)."""
    root = root if root is not None else schema
    if not isinstance(schema, dict) or depth > 12:
        return {}
    if "$ref" in schema and isinstance(schema["$ref"], str) and schema["$ref"].startswith("#/"):
        node: Any = root
        for part in schema["$ref"][2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return instance(node, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            typed = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return instance((typed or options)[0], root, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        return {k: instance(v, root, depth + 1) for k, v in props.items()}
    if kind == "array":
        count = schema.get("minItems") if isinstance(schema.get("minItems"), int) else 1
        return [instance(schema.get("items", {"type": "string"}), root, depth + 1) for _ in range(count)]
    if kind == "string":
        size = schema.get("minLength") if isinstance(schema.get("minLength"), int) else 3
        return ("sim" * (size // 3 + 1))[: max(size, 3)]
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}


def _words(seed: str, count: int) -> list[str]:
    rng = random.Random(zlib.crc32(seed.encode()))
    return [f"sim-{rng.randrange(10_000)}" for _ in range(count)]


def _logprobs(pieces: list[str], top: int) -> dict[str, Any]:
    return {"content": [{"token": p, "logprob": -0.5, "bytes": list(p.encode()),
                         "top_logprobs": [{"token": p, "logprob": -0.5, "bytes": list(p.encode())}][:top]}
                        for p in pieces]}


def _answers(f: Features, prompt: str, max_tokens: int) -> list[tuple[list[str], dict[str, Any] | None]]:
    """Per choice: the content pieces and the tool call (or None)."""
    out = []
    for i in range(f.n):
        if f.tool is not None:
            args = orjson.dumps(instance(f.tool.get("parameters") or {"type": "object"})).decode()
            call = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                    "function": {"name": f.tool["name"], "arguments": args}}
            out.append(([], call))
        elif f.schema is not None:
            text = orjson.dumps(instance(f.schema)).decode()
            out.append(([text[j:j + 8] for j in range(0, len(text), 8)], None))
        else:
            words = _words(f"{prompt}|{i}", max_tokens)
            out.append(([w if j == 0 else " " + w for j, w in enumerate(words)], None))
    return out


async def respond(request: web.Request, body: dict[str, Any], f: Features, *, chat: bool, model: str,
                  max_tokens: int, after_token: Callable[[int], None] | None = None) -> web.StreamResponse:
    """`after_token(n)` runs after the n-th streamed token (the crash fault hooks in there)."""
    prompts = f.prompts or [render_chat(body["messages"]) if chat else str(body.get("prompt"))]
    rid = uuid.uuid4().hex
    created = int(time.time())
    choices: list[tuple[list[str], dict[str, Any] | None]] = []
    for p in prompts:
        choices += _answers(f, p, max_tokens)
    prompt_tokens = sum(len(tokenize(p)) for p in prompts)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": sum(max(len(c[0]), 1) for c in choices),
             "total_tokens": 0}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    obj, cid = ("chat.completion", "chatcmpl-" + rid) if chat else ("text_completion", "cmpl-" + rid)
    if not body.get("stream"):
        out = [_full_choice(i, pieces, call, f, chat) for i, (pieces, call) in enumerate(choices)]
        return web.Response(body=orjson.dumps({"id": cid, "object": obj, "created": created, "model": model,
                                               "choices": out, "usage": usage}), content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    head = {"id": cid, "object": obj + ".chunk" if chat else obj, "created": created, "model": model}
    tokens = 0
    for i, (pieces, call) in enumerate(choices):
        for choice in _stream_choices(i, pieces, call, f, chat):
            await resp.write(sse({**head, "choices": [choice]}))
            if after_token is not None and (choice.get("text") or choice.get("delta", {}).get("content")):
                tokens += 1
                after_token(tokens)
    if (body.get("stream_options") or {}).get("include_usage"):
        await resp.write(sse({**head, "choices": [], "usage": usage}))
    await resp.write(DONE)
    return resp


def _full_choice(i: int, pieces: list[str], call: dict[str, Any] | None, f: Features, chat: bool) -> dict[str, Any]:
    lp = _logprobs(pieces, f.top_logprobs) if f.logprobs else None
    if not chat:
        if lp is not None:
            lp = {"tokens": pieces, "token_logprobs": [-0.5] * len(pieces), "top_logprobs": None,
                  "text_offset": [sum(len(p) for p in pieces[:j]) for j in range(len(pieces))]}
        return {"index": i, "text": "".join(pieces), "logprobs": lp, "finish_reason": "length"}
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(pieces) if call is None else None}
    if call is not None:
        msg["tool_calls"] = [call]
    return {"index": i, "message": msg, "logprobs": lp, "finish_reason": "tool_calls" if call else "stop"}


def _stream_choices(i: int, pieces: list[str], call: dict[str, Any] | None, f: Features,
                    chat: bool) -> list[dict[str, Any]]:
    if not chat:
        return [{"index": i, "text": p, "logprobs": None, "finish_reason": None} for p in pieces] + [
            {"index": i, "text": "", "logprobs": None, "finish_reason": "length"}]
    out: list[dict[str, Any]] = [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                  "finish_reason": None}]
    if call is not None:
        args = call["function"]["arguments"]
        first = {"index": 0, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": ""}}
        out.append({"index": i, "delta": {"tool_calls": [first]}, "logprobs": None, "finish_reason": None})
        for j in range(0, len(args), 6):
            frag = {"index": 0, "function": {"arguments": args[j:j + 6]}}
            out.append({"index": i, "delta": {"tool_calls": [frag]}, "logprobs": None, "finish_reason": None})
    for p in pieces:
        lp = _logprobs([p], f.top_logprobs) if f.logprobs else None
        out.append({"index": i, "delta": {"content": p}, "logprobs": lp, "finish_reason": None})
    out.append({"index": i, "delta": {}, "logprobs": None, "finish_reason": "tool_calls" if call else "stop"})
    return out
