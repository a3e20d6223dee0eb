"""Ollama request bodies (typed) and their translation into OpenAI request bodies.

Mapping (Ollama -> OpenAI):
    options.num_predict > 0      -> max_tokens (-1 / -2 / 0: no limit sent)
    options.temperature/top_p/seed/top_k/min_p/presence_penalty/frequency_penalty -> same name
    options.repeat_penalty       -> repetition_penalty (SGLang / vLLM / llama.cpp extension)
    options.stop (str | [str])   -> stop [str]
    options.num_ctx, keep_alive  -> accepted, ignored (an engine's context is fixed at launch)
    format "json" | {schema}     -> response_format json_object | json_schema
    think true|false|"low".."max"-> chat_template_kwargs.enable_thinking (+ reasoning_effort)
    messages[].images (base64)   -> image_url parts with a data: URL
    messages[].tool_calls (args object) -> tool_calls (args JSON string, ids made up if absent)
    role "tool" + tool_name      -> tool message answering the matching earlier call id
    /api/generate                -> chat (system + prompt), or /v1/completions when raw/suffix
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from sglfleet.config import ModelConfig
from sglfleet.core.errors import BadRequest

Number = StrictInt | StrictFloat
ThinkLevel = Literal["low", "medium", "high", "max"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Options(_Open):
    num_predict: StrictInt | None = None
    num_ctx: StrictInt | None = Field(None, ge=1)
    temperature: Number | None = Field(None, ge=0)
    top_p: Number | None = Field(None, ge=0, le=1)
    top_k: StrictInt | None = Field(None, ge=0)
    min_p: Number | None = Field(None, ge=0, le=1)
    seed: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    repeat_penalty: Number | None = Field(None, gt=0)
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None


class ToolFunction(_Open):
    name: StrictStr = Field(min_length=1)
    arguments: dict[str, Any] | StrictStr = Field(default_factory=dict)


class ToolCall(_Open):
    id: StrictStr | None = None
    function: ToolFunction


class Message(_Open):
    role: Literal["system", "user", "assistant", "tool"]
    content: StrictStr | None = ""
    thinking: StrictStr | None = None
    images: list[StrictStr] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: StrictStr | None = None
    tool_call_id: StrictStr | None = None


class _Generation(_Open):
    model: StrictStr = Field(min_length=1, max_length=512)
    stream: StrictBool = True  # Ollama streams unless told otherwise
    options: Options | None = None
    format: Literal["", "json"] | dict[str, Any] | None = None
    think: StrictBool | ThinkLevel | None = None
    keep_alive: StrictStr | Number | None = None


class ChatRequest(_Generation):
    messages: list[Message] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class GenerateRequest(_Generation):
    prompt: StrictStr = ""
    suffix: StrictStr | None = None
    system: StrictStr | None = None
    images: list[StrictStr] | None = None
    raw: StrictBool = False


class EmbedRequest(_Open):
    model: StrictStr = Field(min_length=1, max_length=512)
    input: StrictStr | list[StrictStr] = Field(min_length=1)
    dimensions: StrictInt | None = Field(None, ge=1)
    truncate: StrictBool | None = None


class LegacyEmbeddingsRequest(_Open):
    model: StrictStr = Field(min_length=1, max_length=512)
    prompt: StrictStr


class ShowRequest(_Open):
    model: StrictStr | None = None
    name: StrictStr | None = None  # older clients (older Continue) send "name"

    @property
    def target(self) -> str:
        target = self.model or self.name
        if not target:
            raise BadRequest("missing field 'model'", param="model")
        return target


def sampling(options: Options | None, fmt: Literal["", "json"] | dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if options is not None:
        if options.num_predict is not None and options.num_predict > 0:
            body["max_tokens"] = options.num_predict
        for name in ("temperature", "top_p", "top_k", "min_p", "seed", "presence_penalty",
                     "frequency_penalty"):
            value = getattr(options, name)
            if value is not None:
                body[name] = value
        if options.repeat_penalty is not None:
            body["repetition_penalty"] = options.repeat_penalty
        if options.stop is not None:
            body["stop"] = [options.stop] if isinstance(options.stop, str) else list(options.stop)
    if fmt == "json":
        body["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": fmt, "strict": True}}
    return body


def check_capabilities(cfg: ModelConfig, *, client_model: str, tools: bool, think: bool,
                       images: bool) -> None:
    """Refuse what the model cannot do, as Ollama does, naming the fleet-file switch."""
    for wanted, has, what in ((tools, cfg.capabilities.tools, "tools"),
                              (think, cfg.capabilities.thinking, "thinking"),
                              (images, cfg.capabilities.vision, "vision")):
        if wanted and not has:
            raise BadRequest(f'"{client_model}" does not support {what} (set capabilities.{what}: '
                             f"true for model {cfg.name!r} in the fleet file if it does)")


def thinking_fields(cfg: ModelConfig, think: bool | str | None) -> dict[str, Any]:
    if think is None or not cfg.capabilities.thinking:
        return {}
    body: dict[str, Any] = {"chat_template_kwargs": {"enable_thinking": think is not False}}
    if isinstance(think, str):
        body["reasoning_effort"] = "high" if think == "max" else think
    return body


def _image_part(data: str) -> dict[str, Any]:
    if data.startswith("data:"):
        url = data
    else:
        mime = ("image/png" if data.startswith("iVBOR") else "image/gif" if data.startswith("R0lG")
                else "image/webp" if data.startswith("UklGR") else "image/jpeg")
        url = f"data:{mime};base64,{data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _user_content(text: str, images: list[str] | None) -> str | list[dict[str, Any]]:
    if not images:
        return text
    return [{"type": "text", "text": text}, *(_image_part(i) for i in images)]


def _arguments_json(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()


def openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Ollama history -> OpenAI history. Tool calls get ids when the client sent none, and each
    tool result is tied to the first unanswered call (of the same tool name when given)."""
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (call id, tool name) not yet answered
    for i, m in enumerate(messages):
        if m.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.content or ""}
            if m.tool_calls:
                calls = []
                for j, tc in enumerate(m.tool_calls):
                    call_id = tc.id or f"call_{i}_{j}"
                    pending.append((call_id, tc.function.name))
                    calls.append({"id": call_id, "type": "function",
                                  "function": {"name": tc.function.name,
                                               "arguments": _arguments_json(tc.function.arguments)}})
                msg["tool_calls"] = calls
            out.append(msg)
        elif m.role == "tool":
            if m.tool_call_id is not None:
                call_id = m.tool_call_id
            else:
                match = next((p for p in pending if m.tool_name in (None, p[1])), None)
                call_id = match[0] if match else f"call_{i}"
            pending = [p for p in pending if p[0] != call_id]
            out.append({"role": "tool", "content": m.content or "", "tool_call_id": call_id})
        elif m.role == "user":
            out.append({"role": "user", "content": _user_content(m.content or "", m.images)})
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out


def chat_body(req: ChatRequest, cfg: ModelConfig) -> dict[str, Any]:
    body: dict[str, Any] = {"model": req.model, "messages": openai_messages(req.messages),
                            "stream": req.stream, **sampling(req.options, req.format),
                            **thinking_fields(cfg, req.think)}
    if req.tools:
        body["tools"] = req.tools
    if req.stream:
        body["stream_options"] = {"include_usage": True}
    return body


def generate_body(req: GenerateRequest, cfg: ModelConfig) -> tuple[str, dict[str, Any]]:
    """(OpenAI path, body): raw prompts and fill-in-the-middle go to /v1/completions."""
    common: dict[str, Any] = {"model": req.model, "stream": req.stream, **sampling(req.options, req.format)}
    if req.stream:
        common["stream_options"] = {"include_usage": True}
    if req.raw or req.suffix:
        body = {**common, "prompt": req.prompt}
        if req.suffix:
            body["suffix"] = req.suffix
        return "/v1/completions", body
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": req.system})
    messages.append({"role": "user", "content": _user_content(req.prompt, req.images)})
    return "/v1/chat/completions", {**common, "messages": messages, **thinking_fields(cfg, req.think)}
