"""Adapting one OpenAI request to the contract of the model's engine (engines/contract.py).

`prepare` runs in `openai.forward` before anything is sent, for every API (the Ollama,
Anthropic and Responses translations end there too). It checks the model's capabilities,
rewrites what the engine takes in another form (content parts -> text, `developer` ->
`system`, explicit nulls dropped, `json_schema` -> the engine's constrained decoding,
`tool_choice: "required"` with one tool -> that tool by name, `logprobs` completed) and
refuses what cannot be served with a 400 naming the parameter and the engine. A request known
to fail is never forwarded. What the engine lacks but the gateway can do by itself (`n`,
lists of prompts) comes back as a fan-out: the bodies of the single requests (api/fanout.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sglfleet.core.errors import BadRequest
from sglfleet.engines.contract import Contract
from sglfleet.routing.pool import Pool

_KEEP_NULL = frozenset({"model", "messages", "prompt"})
_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
Counter = Callable[[dict[str, Any]], int | None]


@dataclass(slots=True)
class Plan:
    fanout: list[dict[str, Any]] | None = None  # one body per engine request, merged by index
    transform: Callable[[bytes], bytes] | None = None  # per streamed piece


def _refuse(param: str, what: str, pool: Pool, hint: str = "") -> BadRequest:
    return BadRequest(f"{what} is not supported by model {pool.name!r} (engine {pool.cfg.engine})"
                      + (f"; {hint}" if hint else ""), param=param)


def _text_of(parts: list[Any], where: str) -> str:
    texts = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"'{where}.{i}' must be an object with a 'type'", param=f"{where}.{i}")
        if part["type"] in ("text", "input_text", "output_text"):
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"'{where}.{i}.text' must be a string", param=f"{where}.{i}.text")
            texts.append(part["text"])
    return "\n".join(texts)


def _messages(pool: Pool, c: Contract, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    vision = pool.cfg.capabilities.vision
    for i, msg in enumerate(messages):
        m = dict(msg) if c.nulls else {k: v for k, v in msg.items() if v is not None or k == "content"}
        content = m.get("content")
        if isinstance(content, list):
            if any(isinstance(p, dict) and p.get("type") in _IMAGE_PARTS for p in content):
                if not vision:
                    raise BadRequest(f"model {pool.name!r} does not take images (set capabilities.vision: true "
                                     "for a vision model)", param=f"messages.{i}.content")
                if not c.content_parts:
                    raise _refuse(f"messages.{i}.content", "image content", pool)
            elif not c.content_parts:
                m["content"] = _text_of(content, f"messages.{i}.content")
        if m["role"] not in c.roles:
            if m["role"] == "developer" and "system" in c.roles:
                m["role"] = "system"
            else:
                raise _refuse(f"messages.{i}.role", f"role {m['role']!r}", pool)
        if m.get("content") is None and not c.null_assistant_content:
            if m["role"] == "assistant":
                m["content"] = ""
            elif "content" in m:
                m["content"] = ""
        out.append(m)
    return out


def _json_schema(pool: Pool, c: Contract, rf: dict[str, Any]) -> dict[str, Any]:
    spec = rf.get("json_schema")
    if not isinstance(spec, dict):
        raise BadRequest("'response_format.json_schema' must be an object with 'name' and 'schema'",
                         param="response_format.json_schema")
    schema = spec.get("schema", {"type": "object"})
    if not isinstance(schema, dict):
        raise BadRequest("'response_format.json_schema.schema' must be a JSON Schema object",
                         param="response_format.json_schema.schema")
    if "json_schema" in c.response_formats:
        return rf
    if c.schema_in_json_object:
        return {"type": "json_object", "schema": schema}
    raise _refuse("response_format", "response_format json_schema", pool)


def _response_format(pool: Pool, c: Contract, rf: Any) -> dict[str, Any]:
    if not isinstance(rf, dict) or not isinstance(rf.get("type"), str):
        raise BadRequest("'response_format' must be an object with a 'type'", param="response_format")
    kind = rf["type"]
    known = ("text", "json_object", "json_schema")
    if kind not in known:
        raise BadRequest(f"invalid value for 'response_format.type': {kind[:40]!r}; expected one of "
                         + ", ".join(known), param="response_format.type")
    if kind == "json_schema":
        return _json_schema(pool, c, rf)
    if kind not in c.response_formats:
        raise _refuse("response_format", f"response_format {kind}", pool)
    schema = rf.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise BadRequest("'response_format.schema' must be a JSON Schema object", param="response_format.schema")
    return rf


def _tools(pool: Pool, c: Contract, data: dict[str, Any]) -> None:
    tools, choice = data.get("tools"), data.get("tool_choice")
    if tools:
        if not pool.cfg.capabilities.tools:
            raise BadRequest(f"model {pool.name!r} does not support tools (set capabilities.tools: true "
                             "for a model that does)", param="tools")
        if not c.tools:
            raise _refuse("tools", "tools", pool)
    names = []
    for i, tool in enumerate(tools or ()):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(fn, dict) \
                or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadRequest(f"'tools.{i}' must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}",
                             param=f"tools.{i}")
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            raise BadRequest(f"'tools.{i}.function.parameters' must be a JSON Schema object",
                             param=f"tools.{i}.function.parameters")
        names.append(fn["name"])
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise BadRequest(f"invalid value for 'tool_choice': {choice[:40]!r}; expected none, auto, required "
                             "or a named function", param="tool_choice")
        if choice == "required" and not names:
            raise BadRequest("tool_choice 'required' needs 'tools'", param="tool_choice")
        if choice == "required" and "required" not in c.tool_choices:
            if len(names) != 1 or "named" not in c.tool_choices:
                raise _refuse("tool_choice", "tool_choice 'required' with several tools", pool,
                              "name the function to call in tool_choice")
            data["tool_choice"] = {"type": "function", "function": {"name": names[0]}}
        if choice == "none" and not names and not c.nulls:
            data.pop("tool_choice")
        return
    fn = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise BadRequest("'tool_choice' must be none, auto, required or {\"type\": \"function\", "
                         "\"function\": {\"name\": ...}}", param="tool_choice")
    if fn["name"] not in names:
        raise BadRequest(f"tool_choice names {fn['name'][:60]!r}, which is not in 'tools'", param="tool_choice")
    if "named" not in c.tool_choices:
        raise _refuse("tool_choice", "a named tool_choice", pool)


def _fanout(pool: Pool, c: Contract, data: dict[str, Any], chat: bool) -> list[dict[str, Any]] | None:
    n = data.get("n") or 1
    prompts = data.get("prompt") if not chat else None
    if not chat:
        if prompts == "" or (isinstance(prompts, list) and any(p == "" for p in prompts)):
            if not c.empty_prompt:
                raise _refuse("prompt", "an empty prompt", pool, "send at least one character")
        if isinstance(prompts, list) and prompts and isinstance(prompts[0], int):
            prompts = [prompts]  # one prompt as token ids
    many = isinstance(prompts, list) and len(prompts) > 1 and not c.prompt_lists
    if n <= 1 and not many:
        if isinstance(prompts, list) and len(prompts) == 1 and not c.prompt_lists:
            data["prompt"] = prompts[0]
        return None
    if n > 1 and c.n and not many:
        return None
    base = {k: v for k, v in data.items() if k != "n"} if not c.n else data
    each = prompts if many else [data.get("prompt")] if not chat else [None]
    bodies = []
    for p in each:
        for _ in range(1 if c.n else n):
            body = dict(base)
            if p is not None:
                body["prompt"] = p
            bodies.append(body)
    return bodies


async def prepare(pool: Pool, data: dict[str, Any], path: str, counter: Counter | None = None) -> Plan:
    """Adapt `data` in place to the engine of `pool`; raises BadRequest for what cannot be
    served. `counter` counts prompt tokens (engines that need the gateway's context check)."""
    c: Contract = pool.engine.contract
    chat = path == "/v1/chat/completions"
    if path not in ("/v1/chat/completions", "/v1/completions"):
        return Plan()
    if not c.nulls:
        for key in [k for k, v in data.items() if v is None and k not in _KEEP_NULL]:
            del data[key]
    if chat:
        data["messages"] = _messages(pool, c, data["messages"])
        if data.get("response_format") is not None:
            data["response_format"] = _response_format(pool, c, data["response_format"])
        _tools(pool, c, data)
    if data.get("logprobs") and chat:
        if not c.logprobs:
            raise _refuse("logprobs", "logprobs", pool)
        if c.logprobs_need_top and data.get("top_logprobs") is None:
            data["top_logprobs"] = 1
    plan = Plan(fanout=_fanout(pool, c, data, chat))
    if c.stream_context_check and counter is not None and plan.fanout is None:
        await _check_context(pool, data, counter)
    if data.get("stream") is True and c.repeats_tool_call_header and data.get("tools"):
        plan.transform = ToolCallHeaders()
    return plan


def chain(*fns: Callable[[bytes], bytes] | None) -> Callable[[bytes], bytes] | None:
    """One per-piece transform out of several (None where there is nothing to do)."""
    todo = [f for f in fns if f is not None]
    if len(todo) < 2:
        return todo[0] if todo else None
    first, second = todo[0], chain(*todo[1:])
    assert second is not None
    return lambda piece: second(first(piece))


async def _check_context(pool: Pool, data: dict[str, Any], counter: Counter) -> None:
    """The engine's own check, done before a stream opens (its stream would end empty)."""
    limit = pool.cfg.capabilities.context_window or pool.cfg.n_ctx
    tokens = await asyncio.to_thread(counter, dict(data))
    if tokens is None or tokens < limit:
        return
    asked = data.get("max_tokens") or 0
    raise BadRequest(f"This model's maximum context length is {limit} tokens. However, you requested "
                     f"{tokens + asked} tokens ({tokens} in the messages, {asked} in the completion). "
                     "Please reduce the length of the messages or completion.",
                     param="messages" if "messages" in data else "prompt", code="context_length_exceeded")


class ToolCallHeaders:
    """A streamed tool call's `id`, `type` and `function.name` only in the first delta of each
    index, as OpenAI sends them (llama-cpp-python repeats them in every delta, and clients
    that concatenate fragments end up with `get_weatherget_weather...`). Events cut between
    two pieces are held until complete."""

    __slots__ = ("_seen", "_rest")

    def __init__(self) -> None:
        self._seen: set[tuple[int, int]] = set()
        self._rest = b""

    def __call__(self, piece: bytes) -> bytes:
        buf = self._rest + piece
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self._rest = buf
            return b""
        self._rest = buf[cut + 2:]
        if b'"tool_calls"' not in buf:
            return buf[: cut + 2]
        return b"".join(self._event(e) for e in buf[:cut].split(b"\n\n"))

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(b"data: {") or b'"tool_calls"' not in event:
            return event + b"\n\n"
        try:
            data = orjson.loads(event[6:])
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        for choice in data.get("choices") or ():
            for call in (choice.get("delta") or {}).get("tool_calls") or ():
                key = (choice.get("index", 0), call.get("index", 0))
                if key not in self._seen:
                    self._seen.add(key)
                    continue
                for field in ("id", "type"):
                    call.pop(field, None)
                fn = call.get("function")
                if isinstance(fn, dict):
                    fn.pop("name", None)
        return b"data: " + orjson.dumps(data) + b"\n\n"
