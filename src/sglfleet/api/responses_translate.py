"""OpenAI Responses request bodies (typed) and their translation into OpenAI chat bodies.

Mapping (Responses -> chat):
    instructions                         -> a first system message (not carried over by
                                            previous_response_id, as OpenAI does)
    input "text"                         -> one user message
    message items (user/system/developer/assistant; input_text, output_text, input_image)
                                         -> messages (developer -> system)
    function_call items                  -> tool_calls on an assistant message (consecutive
                                            calls join one message)
    function_call_output items           -> tool messages (tool_call_id = call_id)
    reasoning items                      -> dropped (the engine's template re-renders reasoning)
    tools [{type: function, name, description, parameters}] -> function tools
    tool_choice auto/none/required/{type: function, name}   -> the same in chat form
    max_output_tokens, temperature, top_p, parallel_tool_calls -> max_tokens, same names
    text.format text/json_object/json_schema -> response_format
    reasoning.effort                     -> reasoning_effort + chat_template_kwargs.enable_thinking
                                            (models marked capabilities.thinking)
Hosted tools (web_search, file_search, computer use, MCP, ...) are refused with a 400 naming
them: the fleet runs only the client's own function tools.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
)

from sglfleet.api.body import validate
from sglfleet.api.ollama_translate import thinking_fields
from sglfleet.config import ModelConfig
from sglfleet.core.errors import BadRequest

Number = StrictInt | StrictFloat


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(_Open):
    type: Literal["input_text", "output_text", "text"]
    text: StrictStr


class ImagePart(_Open):
    type: Literal["input_image"]
    image_url: StrictStr = Field(min_length=1)
    detail: StrictStr | None = None


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class MessageItem(_Open):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: StrictStr | list[Part]


class FunctionCallItem(_Open):
    type: Literal["function_call"]
    call_id: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    arguments: StrictStr = ""


class FunctionCallOutputItem(_Open):
    type: Literal["function_call_output"]
    call_id: StrictStr = Field(min_length=1)
    output: StrictStr | list[Part]


class ReasoningItem(_Open):
    type: Literal["reasoning"]


def _item_tag(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type") or "message")
    return str(getattr(value, "type", "message"))


Item = Annotated[
    Annotated[MessageItem, Tag("message")] | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")] | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(_item_tag),
]


class FunctionTool(_Open):
    type: Literal["function"]
    name: StrictStr = Field(min_length=1, max_length=128)
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class NamedFunction(_Open):
    type: Literal["function"]
    name: StrictStr = Field(min_length=1)


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    name: StrictStr | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: StrictBool | None = None


class TextConfig(_Open):
    format: TextFormat | None = None


class ReasoningConfig(_Open):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: StrictStr | None = None


class ResponsesRequest(_Open):
    model: StrictStr = Field(min_length=1, max_length=512)
    input: StrictStr | list[Item]
    instructions: StrictStr | None = None
    previous_response_id: StrictStr | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedFunction | None = None
    parallel_tool_calls: StrictBool | None = None
    max_output_tokens: StrictInt | None = Field(None, ge=1)
    temperature: Number | None = Field(None, ge=0, le=2)
    top_p: Number | None = Field(None, ge=0, le=1)
    stream: StrictBool = False
    store: StrictBool = True
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, StrictStr] | None = None
    user: StrictStr | None = None


def function_tools(tools: list[dict[str, Any]] | None) -> list[FunctionTool]:
    out = []
    for i, tool in enumerate(tools or ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise BadRequest(f"tool type {kind!r} is not served here: only function tools run on this fleet",
                             param=f"tools.{i}.type")
        try:
            out.append(validate(FunctionTool, tool))  # type: ignore[arg-type]
        except BadRequest as exc:
            raise BadRequest(f"tools.{i}: {exc.message}", param=f"tools.{i}.{exc.param}" if exc.param
                             else f"tools.{i}") from None
    return out


def _parts(parts: str | list[TextPart | ImagePart]) -> Any:
    if isinstance(parts, str):
        return parts
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    return [{"type": "text", "text": p.text} if isinstance(p, TextPart)
            else {"type": "image_url", "image_url": {"url": p.image_url}} for p in parts]


def input_messages(items: str | list[Any]) -> list[dict[str, Any]]:
    """The request's `input` as chat messages (instructions excluded)."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, MessageItem):
            role = "system" if item.role == "developer" else item.role
            content = _parts(item.content)
            if role == "assistant" and not isinstance(content, str):
                content = "".join(p.get("text", "") for p in content)
            out.append({"role": role, "content": content})
        elif isinstance(item, FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments or "{}"}}
            if out and out[-1]["role"] == "assistant":  # the assistant turn the call belongs to
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            output = _parts(item.output)
            out.append({"role": "tool", "tool_call_id": item.call_id,
                        "content": output if isinstance(output, str) else str(output)})
    return out


def _response_format(fmt: TextFormat | None) -> dict[str, Any] | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.schema_ is None:
        raise BadRequest("text.format of type 'json_schema' needs a 'schema'", param="text.format.schema")
    return {"type": "json_schema", "json_schema": {"name": fmt.name or "output", "schema": fmt.schema_,
                                                   "strict": bool(fmt.strict)}}


def _thinking(cfg: ModelConfig, reasoning: ReasoningConfig | None) -> dict[str, Any]:
    if reasoning is None or reasoning.effort is None:
        return {}
    on = reasoning.effort not in ("none", "minimal")
    body = thinking_fields(cfg, on)
    if body and on:
        body["reasoning_effort"] = "high" if reasoning.effort == "xhigh" else reasoning.effort
    return body


def chat_body(req: ResponsesRequest, cfg: ModelConfig, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat body: instructions, the stored history (previous_response_id), the new input."""
    messages = ([{"role": "system", "content": req.instructions}] if req.instructions else []) + history
    body: dict[str, Any] = {"model": req.model, "messages": messages, "stream": req.stream,
                            **_thinking(cfg, req.reasoning)}
    if req.max_output_tokens is not None:
        body["max_tokens"] = req.max_output_tokens
    for name in ("temperature", "top_p", "parallel_tool_calls"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    tools = function_tools(req.tools)
    if tools:
        body["tools"] = [{"type": "function", "function": {
            "name": t.name, "description": t.description or "",
            "parameters": t.parameters or {"type": "object", "properties": {}}}} for t in tools]
    if req.tool_choice is not None:
        body["tool_choice"] = (req.tool_choice if isinstance(req.tool_choice, str)
                               else {"type": "function", "function": {"name": req.tool_choice.name}})
    fmt = _response_format(req.text.format if req.text else None)
    if fmt is not None:
        body["response_format"] = fmt
    if req.stream:
        body["stream_options"] = {"include_usage": True}
    return body
