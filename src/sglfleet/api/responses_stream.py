"""OpenAI chat output -> OpenAI Responses output, streamed and whole.

`ResponseBuilder` consumes the neutral events of `chat_events`, emits the Responses stream and
keeps the response it describes: a streamed answer (what the openai SDK's `responses.stream`
accumulates) and a non-streamed one are the same object. Stream:

    response.created, response.in_progress (status in_progress, no output yet),
    reasoning item: output_item.added, content_part.added (reasoning_text),
        response.reasoning_text.delta..., reasoning_text.done, content_part.done, output_item.done
    message item:   output_item.added, content_part.added (output_text),
        response.output_text.delta..., output_text.done, content_part.done, output_item.done
    function call:  output_item.added, response.function_call_arguments.delta...,
        function_call_arguments.done, output_item.done
    response.completed (or response.incomplete when max_output_tokens cut it,
    response.failed when the engine failed mid-stream).

Every event carries `sequence_number`; items open in the order the engine produces them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
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


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


OnDone = Callable[[dict[str, Any]], None]


class ResponseBuilder:
    """One response being built; `base` holds the echoed request fields (model, tools, ...)."""

    def __init__(self, base: dict[str, Any], *, on_done: OnDone | None = None) -> None:
        self.base = {"id": new_id("resp"), "object": "response", "created_at": int(time.time()), **base}
        self.on_done = on_done
        self.output: list[dict[str, Any]] = []
        self._open: tuple[str, int] | None = None  # (kind, tool index)
        self._tool_items: dict[int, int] = {}  # engine tool index -> output index
        self._finish: Finish | None = None
        self._usage = Usage(0, 0)
        self._seq = 0
        self._chunks = SSEChunks()
        self._parser = ChunkEvents()
        self.error: str | None = None
        self.final: dict[str, Any] | None = None
        self.done = False

    # -- SSE ------------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse_event(kind, data)

    def head(self) -> bytes:
        snapshot = self.response(status="in_progress")
        return self._event("response.created", response=snapshot) + \
            self._event("response.in_progress", response=snapshot)

    def feed(self, piece: bytes) -> bytes:
        return b"".join(self.apply(ev) for chunk in self._chunks.feed(piece) for ev in self._parser.events(chunk))

    def close(self) -> bytes:
        out = b"".join(self.apply(ev) for chunk in self._chunks.rest() for ev in self._parser.events(chunk))
        return out + self.finish()

    # -- events -----------------------------------------------------------------------------

    def apply(self, ev: Event) -> bytes:
        if self.done:
            return b""
        if isinstance(ev, Text):
            out = self._ensure("message", -1)
            item = self.output[-1]
            item["content"][0]["text"] += ev.text
            return out + self._event("response.output_text.delta", item_id=item["id"],
                                     output_index=len(self.output) - 1, content_index=0, delta=ev.text,
                                     logprobs=[])
        if isinstance(ev, Reasoning):
            out = self._ensure("reasoning", -1)
            item = self.output[-1]
            item["content"][0]["text"] += ev.text
            return out + self._event("response.reasoning_text.delta", item_id=item["id"],
                                     output_index=len(self.output) - 1, content_index=0, delta=ev.text)
        if isinstance(ev, ToolStart):
            out = self._close_item()
            item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress", "arguments": "",
                    "call_id": ev.id or new_id("call"), "name": ev.name}
            self.output.append(item)
            self._tool_items[ev.index] = len(self.output) - 1
            self._open = ("function_call", ev.index)
            return out + self._event("response.output_item.added", output_index=len(self.output) - 1,
                                     item=dict(item))
        if isinstance(ev, ToolArgs):
            index = self._tool_items.get(ev.index)
            if index is None:
                return b""
            item = self.output[index]
            item["arguments"] += ev.fragment
            return self._event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                               delta=ev.fragment)
        if isinstance(ev, Finish):
            self._finish = ev
        elif isinstance(ev, Usage):
            self._usage = ev
        elif isinstance(ev, Failure):
            self.error = ev.message
            self.done = True
            return self._event("response.failed", response=self.response(status="failed"))
        return b""

    def _ensure(self, kind: str, key: int) -> bytes:
        if self._open == (kind, key):
            return b""
        out = self._close_item()
        if kind == "message":
            item: dict[str, Any] = {"id": new_id("msg"), "type": "message", "status": "in_progress",
                                    "role": "assistant", "content": []}
            part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        else:
            item = {"id": new_id("rs"), "type": "reasoning", "status": "in_progress", "summary": [], "content": []}
            part = {"type": "reasoning_text", "text": ""}
        self.output.append(item)
        self._open = (kind, key)
        index = len(self.output) - 1
        out += self._event("response.output_item.added", output_index=index, item=_copy(item))
        item["content"].append(part)
        return out + self._event("response.content_part.added", item_id=item["id"], output_index=index,
                                 content_index=0, part=dict(part))

    def _close_item(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        index = len(self.output) - 1
        item = self.output[index]
        item["status"] = self._item_status()
        out = b""
        if item["type"] == "message":
            part = item["content"][0]
            out += self._event("response.output_text.done", item_id=item["id"], output_index=index,
                               content_index=0, text=part["text"], logprobs=[])
            out += self._event("response.content_part.done", item_id=item["id"], output_index=index,
                               content_index=0, part=dict(part))
        elif item["type"] == "reasoning":
            part = item["content"][0]
            out += self._event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                               content_index=0, text=part["text"])
            out += self._event("response.content_part.done", item_id=item["id"], output_index=index,
                               content_index=0, part=dict(part))
        else:
            out += self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                               name=item["name"], arguments=item["arguments"])
        return out + self._event("response.output_item.done", output_index=index, item=_copy(item))

    def _item_status(self) -> str:
        return "incomplete" if self._finish is not None and self._finish.reason == "length" else "completed"

    # -- the end ------------------------------------------------------------------------------

    def finish(self) -> bytes:
        if self.done:
            return b""
        self._finish = self._finish or Finish(None)
        out = self._close_item()
        self.done = True
        status = "incomplete" if self._finish.reason == "length" else "completed"
        self.final = self.response(status=status)
        if self.on_done is not None:
            self.on_done(self.final)
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return out + self._event(kind, response=self.final)

    def usage(self) -> dict[str, Any]:
        u = self._usage
        return {"input_tokens": u.prompt, "input_tokens_details": {"cached_tokens": u.cached, "cache_write_tokens": 0},
                "output_tokens": u.completion, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": u.prompt + u.completion}

    def response(self, *, status: str) -> dict[str, Any]:
        final = status in ("completed", "incomplete", "failed")
        out = {**self.base, "status": status, "output": [_copy(i) for i in self.output] if final else [],
               "error": None, "incomplete_details": None, "usage": self.usage() if final else None}
        if status == "incomplete":
            out["incomplete_details"] = {"reason": "max_output_tokens"}
        if status == "failed":
            out["error"] = {"code": "server_error", "message": self.error or "the engine failed"}
        if status in ("completed", "incomplete"):
            out["completed_at"] = int(time.time())
        return out


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    copied = dict(item)
    if "content" in copied:
        copied["content"] = [dict(p) for p in copied["content"]]
    return copied


def whole_response(builder: ResponseBuilder, data: dict[str, Any]) -> dict[str, Any]:
    """A complete chat.completion -> the Responses object (same builder as the stream)."""
    for ev in completion_events(data):
        builder.apply(ev)
    builder.finish()
    assert builder.final is not None
    return builder.final


def assistant_message(output: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chat message an answer adds to the conversation (reasoning left out)."""
    text = "".join(p.get("text", "") for i in output if i["type"] == "message" for p in i["content"])
    calls = [{"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
             for i in output if i["type"] == "function_call"]
    if not text and not calls:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        msg["tool_calls"] = calls
    return msg
