"""OpenAI chat output -> Anthropic Messages output, streamed and whole.

`MessageBuilder` consumes the neutral events of `chat_events` and both emits Anthropic's SSE
and keeps the message it describes, so a streamed answer accumulated by the anthropic SDK and
a non-streamed one are the same object. Stream (Anthropic's exact sequence):

    message_start (usage 0/0: token counts arrive at the end), ping,
    per block: content_block_start, content_block_delta (thinking_delta | text_delta |
    input_json_delta)..., content_block_stop,
    message_delta (stop_reason, stop_sequence, usage with input and output tokens), message_stop.

Blocks open in the order the engine produces them (reasoning, text, tool calls); a change of
kind (or of tool call) closes the open block. An error after the stream started is an
`error` event, as Anthropic sends it. Usage: `input_tokens` excludes the engine's cached
prompt tokens, which are reported as `cache_read_input_tokens` (Anthropic's accounting).
"""

from __future__ import annotations

from typing import Any

from sglfleet.api.adapter import SSEChunks, sse_event
from sglfleet.api.chat_events import (
    ChunkEvents,
    Event,
    Failure,
    Finish,
    Reasoning,
    Text,
    ToolArgs,
    ToolStart,
    Usage,
    completion_events,
)
from sglfleet.api.ollama_stream import tool_arguments

_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}

# HTTP status -> Anthropic error type
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               503: "overloaded_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")


def error_object(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


class MessageBuilder:
    """One Anthropic message being built from chat events; `feed`/`close` give SSE bytes."""

    def __init__(self, msg_id: str, model: str, *, show_thinking: bool = True,
                 stop_sequences: list[str] | None = None) -> None:
        self.id = msg_id
        self.model = model
        self.show_thinking = show_thinking
        self.stop_sequences = stop_sequences or []
        self.content: list[dict[str, Any]] = []
        self._open: tuple[str, int] | None = None  # (kind, tool index) of the open block
        self._args: dict[int, str] = {}  # content index -> tool arguments so far
        self._tool_blocks: dict[int, int] = {}  # engine tool index -> content index
        self._finish: Finish | None = None
        self._usage = Usage(0, 0)
        self._chunks = SSEChunks()
        self._parser = ChunkEvents()
        self.failed = False
        self.done = False

    # -- SSE ------------------------------------------------------------------------------

    def head(self) -> bytes:
        start = {"id": self.id, "type": "message", "role": "assistant", "content": [], "model": self.model,
                 "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        return sse_event("message_start", {"type": "message_start", "message": start}) + \
            sse_event("ping", {"type": "ping"})

    def feed(self, piece: bytes) -> bytes:
        return b"".join(self.apply(ev) for chunk in self._chunks.feed(piece) for ev in self._parser.events(chunk))

    def close(self) -> bytes:
        out = b"".join(self.apply(ev) for chunk in self._chunks.rest() for ev in self._parser.events(chunk))
        return out + self.finish()

    # -- events -----------------------------------------------------------------------------

    def apply(self, ev: Event) -> bytes:
        if self.failed or self.done:
            return b""
        if isinstance(ev, Text):
            return self._delta("text", -1, {"type": "text_delta", "text": ev.text})
        if isinstance(ev, Reasoning):
            if not self.show_thinking:
                return b""
            return self._delta("thinking", -1, {"type": "thinking_delta", "thinking": ev.text})
        if isinstance(ev, ToolStart):
            out = self._close_block()
            index = len(self.content)
            call_id = ev.id or f"toolu_{self.id.removeprefix('msg_')}_{index}"
            block = {"type": "tool_use", "id": call_id, "name": ev.name, "input": {}}
            self.content.append(dict(block))
            self._tool_blocks[ev.index] = index
            self._args[index] = ""
            self._open = ("tool_use", ev.index)
            return out + sse_event("content_block_start", {"type": "content_block_start", "index": index,
                                                           "content_block": block})
        if isinstance(ev, ToolArgs):
            index = self._tool_blocks.get(ev.index)
            if index is None:
                return b""
            out = b""
            if self._open != ("tool_use", ev.index):  # interleaved calls: reopen is impossible, append
                out = self._close_block()
            self._args[index] += ev.fragment
            return out + sse_event("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": ev.fragment}})
        if isinstance(ev, Finish):
            self._finish = ev
            return b""
        if isinstance(ev, Usage):
            self._usage = ev
            return b""
        if isinstance(ev, Failure):
            self.failed = True
            return sse_event("error", error_object(500, ev.message))
        return b""

    def _delta(self, kind: str, key: int, delta: dict[str, Any]) -> bytes:
        out = b""
        if self._open != (kind, key):
            out = self._close_block()
            index = len(self.content)
            block: dict[str, Any] = ({"type": "text", "text": ""} if kind == "text"
                                     else {"type": "thinking", "thinking": "", "signature": ""})
            self.content.append(dict(block))
            self._open = (kind, key)
            out += sse_event("content_block_start", {"type": "content_block_start", "index": index,
                                                     "content_block": block})
        index = len(self.content) - 1
        field = "text" if kind == "text" else "thinking"
        self.content[index][field] += delta[field]
        return out + sse_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": delta})

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return sse_event("content_block_stop", {"type": "content_block_stop", "index": len(self.content) - 1})

    # -- the end ------------------------------------------------------------------------------

    def stop(self) -> tuple[str, str | None]:
        has_tools = any(b["type"] == "tool_use" for b in self.content)
        fin = self._finish or Finish(None)
        if fin.reason == "stop" and fin.matched is not None and fin.matched in self.stop_sequences:
            return "stop_sequence", fin.matched
        reason = _STOP_REASONS.get(fin.reason or "", "end_turn")
        if reason == "end_turn" and has_tools:
            reason = "tool_use"
        return reason, None

    def usage(self) -> dict[str, Any]:
        u = self._usage
        out: dict[str, Any] = {"input_tokens": max(0, u.prompt - u.cached), "output_tokens": u.completion}
        if u.cached:
            out["cache_read_input_tokens"] = u.cached
        return out

    def finish(self) -> bytes:
        if self.failed or self.done:
            return b""
        self.done = True
        for index, raw in self._args.items():
            self.content[index]["input"] = tool_arguments(raw)
        reason, sequence = self.stop()
        return self._close_block() + sse_event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": self.usage()}) + sse_event("message_stop", {"type": "message_stop"})

    def message(self) -> dict[str, Any]:
        reason, sequence = self.stop()
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": self.content, "stop_reason": reason, "stop_sequence": sequence, "usage": self.usage()}


def whole_message(builder: MessageBuilder, data: dict[str, Any]) -> dict[str, Any]:
    """A complete chat.completion -> the Anthropic message (same builder as the stream)."""
    for ev in completion_events(data):
        builder.apply(ev)
    builder.finish()
    return builder.message()
