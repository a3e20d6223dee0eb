"""Anthropic Messages request bodies (typed) and their translation into OpenAI chat bodies.

Mapping (Anthropic -> OpenAI):
    system (string or text blocks)      -> a first system message
    user text / image blocks            -> user message (text, image_url parts with data: URLs)
    user tool_result blocks             -> tool messages (tool_call_id = tool_use_id), before the
                                           user's own text; is_error prefixes "Error: "
    assistant text / tool_use blocks    -> assistant message with content and tool_calls
    assistant thinking blocks           -> dropped (the engine's template re-renders reasoning)
    tools[{name, description, input_schema}] -> function tools
    tool_choice auto/any/tool/none      -> "auto"/"required"/{function}/"none";
                                           disable_parallel_tool_use -> parallel_tool_calls false
    stop_sequences                      -> stop
    max_tokens, temperature, top_p, top_k -> same names
    thinking enabled/adaptive/disabled  -> chat_template_kwargs.enable_thinking for models marked
                                           `capabilities.thinking` (budget_tokens is not enforced)
    output_config.format (json_schema)  -> response_format json_schema
    output_config.effort                -> reasoning_effort (thinking models; xhigh/max -> high)
Unknown block types (documents, server tools) are refused with a 400 naming them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from sglfleet.api.ollama_translate import thinking_fields
from sglfleet.config import ModelConfig

Number = StrictInt | StrictFloat


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # cache_control, citations, ... are accepted and ignored


class TextBlock(_Open):
    type: Literal["text"]
    text: StrictStr


class Base64Source(_Open):
    type: Literal["base64"]
    media_type: StrictStr
    data: StrictStr


class UrlSource(_Open):
    type: Literal["url"]
    url: StrictStr


class ImageBlock(_Open):
    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]


class ToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: StrictStr = Field(min_length=1)
    content: StrictStr | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] = ""
    is_error: StrictBool = False


class ThinkingBlock(_Open):
    type: Literal["thinking"]
    thinking: StrictStr
    signature: StrictStr | None = None


class RedactedThinkingBlock(_Open):
    type: Literal["redacted_thinking"]
    data: StrictStr


Block = Annotated[TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
                  Field(discriminator="type")]


class Message(_Open):
    role: Literal["user", "assistant"]
    content: StrictStr | list[Block]


class Tool(_Open):
    name: StrictStr = Field(min_length=1, max_length=128)
    description: StrictStr | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None


class ToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None = None
    disable_parallel_tool_use: StrictBool | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolChoice:
        if self.type == "tool" and not self.name:
            raise ValueError("tool_choice of type 'tool' needs the tool's 'name'")
        return self


class Thinking(_Open):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: StrictInt | None = Field(None, ge=1)


class OutputFormat(_Open):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Open):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: OutputFormat | None = None


class CountTokensRequest(_Open):
    model: StrictStr = Field(min_length=1, max_length=512)
    messages: list[Message] = Field(min_length=1)
    system: StrictStr | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: StrictInt = Field(ge=1)
    stop_sequences: list[StrictStr] | None = None
    stream: StrictBool = False
    temperature: Number | None = Field(None, ge=0, le=2)
    top_p: Number | None = Field(None, ge=0, le=1)
    top_k: StrictInt | None = Field(None, ge=0)
    metadata: dict[str, Any] | None = None


def wants_thinking(req: CountTokensRequest) -> bool | None:
    """True/False when the client said, None when it did not."""
    if req.thinking is None:
        return None
    return req.thinking.type != "disabled"


def _system_text(system: str | list[TextBlock] | None) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    return "\n\n".join(b.text for b in system)


def _image_part(block: ImageBlock) -> dict[str, Any]:
    src = block.source
    url = src.url if isinstance(src, UrlSource) else f"data:{src.media_type};base64,{src.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_text(block: ToolResultBlock) -> str:
    if isinstance(block.content, str):
        text = block.content
    else:
        text = "\n".join(b.text for b in block.content if isinstance(b, TextBlock))
    return f"Error: {text}" if block.is_error and not text.startswith("Error") else text


def _user_messages(blocks: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for b in blocks:
        if isinstance(b, ToolResultBlock):
            out.append({"role": "tool", "tool_call_id": b.tool_use_id, "content": _tool_result_text(b)})
        elif isinstance(b, TextBlock):
            parts.append({"type": "text", "text": b.text})
        elif isinstance(b, ImageBlock):
            parts.append(_image_part(b))
    if parts:
        plain = all(p["type"] == "text" for p in parts)
        content: Any = "\n".join(p["text"] for p in parts) if plain else parts
        out.append({"role": "user", "content": content})
    return out


def _assistant_message(blocks: list[Any]) -> dict[str, Any]:
    text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
    msg: dict[str, Any] = {"role": "assistant", "content": text}
    calls = [{"id": b.id, "type": "function",
              "function": {"name": b.name, "arguments": orjson.dumps(b.input).decode()}}
             for b in blocks if isinstance(b, ToolUseBlock)]
    if calls:
        msg["tool_calls"] = calls
    return msg


def openai_messages(req: CountTokensRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = _system_text(req.system)
    if system:
        out.append({"role": "system", "content": system})
    for m in req.messages:
        if isinstance(m.content, str):
            out.append({"role": m.role, "content": m.content})
        elif m.role == "user":
            out += _user_messages(m.content)
        else:
            out.append(_assistant_message(m.content))
    return out


def _tool_choice(choice: ToolChoice) -> Any:
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


def chat_body(req: CountTokensRequest, cfg: ModelConfig, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": req.model, "messages": openai_messages(req), "stream": stream,
                            **thinking_fields(cfg, wants_thinking(req))}
    if isinstance(req, MessagesRequest):
        body["max_tokens"] = req.max_tokens
        for name in ("temperature", "top_p", "top_k"):
            value = getattr(req, name)
            if value is not None:
                body[name] = value
        if req.stop_sequences:
            body["stop"] = list(req.stop_sequences)
    out = req.output_config
    if out is not None and out.format is not None:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": out.format.schema_, "strict": True}}
    if out is not None and out.effort is not None and "chat_template_kwargs" in body:
        body["reasoning_effort"] = "high" if out.effort in ("xhigh", "max") else out.effort
    if req.tools:
        body["tools"] = [{"type": "function", "function": {
            "name": t.name, "description": t.description or "", "parameters": t.input_schema}} for t in req.tools]
        if req.tool_choice is not None:
            body["tool_choice"] = _tool_choice(req.tool_choice)
            if req.tool_choice.disable_parallel_tool_use:
                body["parallel_tool_calls"] = False
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body
