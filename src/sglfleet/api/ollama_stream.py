"""OpenAI responses -> Ollama responses: SSE events become NDJSON lines, a complete
chat.completion becomes one Ollama object.

`ollama_adapter` wraps the gateway's own relay (the ASGI app `openai.forward` returns) and
rewrites what it sends, so dispatch, retries, limits, disconnect handling, metrics and the
access log stay exactly those of /v1. Stream rules (Ollama's):

- one JSON object per line, `done: false`, content as it arrives (`message.content` for chat,
  `response` for generate), reasoning as `thinking` unless the request said `think: false`;
- tool calls are sent whole (arguments parsed into a JSON object) in one line once the engine
  finished them, never as fragments;
- a final `done: true` line with `done_reason`, token counts and durations in nanoseconds:
  prompt_eval_duration = time to the first token, eval_duration = first to last token;
- an error after the stream started is a final line `{"error": "..."}` (status stays 200).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from sglfleet.api.adapter import ASGIApp, RelayAdapter, sse_objects
from sglfleet.api.ollama_meta import now_rfc3339

Kind = Literal["chat", "generate"]

_DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "content_filter": "stop"}


def ndjson(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


def estimate_tokens(text: str) -> int:
    """Fallback when an engine reports no prompt usage (llama.cpp streams): ~4 chars a token."""
    return max(1, (len(text) + 3) // 4) if text else 0


def tool_arguments(raw: Any) -> dict[str, Any]:
    """OpenAI sends arguments as a JSON string, Ollama as an object; text that is not a JSON
    object is kept under "arguments" rather than dropped."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"arguments": raw}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


def ollama_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tc in enumerate(calls):
        fn = tc.get("function") or {}
        entry: dict[str, Any] = {"function": {"index": i, "name": fn.get("name") or "",
                                              "arguments": tool_arguments(fn.get("arguments"))}}
        if tc.get("id"):
            entry["id"] = tc["id"]
        out.append(entry)
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reasoning(obj: dict[str, Any]) -> str:
    value = obj.get("reasoning_content") or obj.get("reasoning")
    return value if isinstance(value, str) else ""


@dataclass(slots=True)
class Converter:
    """State of one response being translated; `t0` is the gateway's perf_counter at arrival."""

    kind: Kind
    model: str
    t0: float
    show_thinking: bool = True
    prompt_text: str = ""
    t_first: float | None = None
    t_last: float | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed: bool = False
    _buf: bytes = b""
    _calls: dict[int, dict[str, Any]] = field(default_factory=dict)

    # -- streaming ------------------------------------------------------------------------
    def head(self) -> bytes:
        return b""  # Ollama streams start with the first content line


    def feed(self, piece: bytes) -> bytes:
        buf = self._buf + piece  # only an unfinished event is carried over: stays small
        *events, self._buf = buf.replace(b"\r\n", b"\n").split(b"\n\n")
        return b"".join(self._event(e) for e in events)

    def close(self) -> bytes:
        out = self._event(self._buf) if self._buf.strip() else b""
        self._buf = b""
        if self.failed:
            return out
        return out + self._flush_calls() + ndjson(self._final())

    def _event(self, event: bytes) -> bytes:
        if self.failed:
            return b""
        return b"".join(self._chunk(data) for data in sse_objects(event))

    def _chunk(self, data: dict[str, Any]) -> bytes:
        if data.get("error"):
            err = data["error"]
            self.failed = True
            msg = err.get("message") if isinstance(err, dict) else str(err)
            return ndjson({"error": msg or "the engine failed during generation"})
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage(usage)
        out = b""
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _dict(choice.get("delta"))
            text = choice.get("text") if "text" in choice else delta.get("content")
            thinking = _reasoning(delta) if self.show_thinking else ""
            for tc in delta.get("tool_calls") or ():
                self._add_call_delta(tc)
            if text or thinking:
                self._tick()
                out += ndjson(self._delta(text or "", thinking))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                out += self._flush_calls()
        return out

    def _add_call_delta(self, tc: Any) -> None:
        if not isinstance(tc, dict):
            return
        self._tick()
        index = tc.get("index")
        call = self._calls.setdefault(index if isinstance(index, int) else len(self._calls),
                                      {"id": None, "function": {"name": "", "arguments": ""}})
        if tc.get("id"):
            call["id"] = tc["id"]
        fn = tc.get("function") or {}
        if fn.get("name"):
            call["function"]["name"] += fn["name"]
        if fn.get("arguments"):
            args = fn["arguments"]
            call["function"]["arguments"] += args if isinstance(args, str) else orjson.dumps(args).decode()

    def _flush_calls(self) -> bytes:
        if not self._calls or self.kind != "chat":
            return b""
        calls = [self._calls[i] for i in sorted(self._calls)]
        self._calls.clear()
        line = self._delta("", "")
        line["message"]["tool_calls"] = ollama_tool_calls(calls)
        return ndjson(line)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
        self.t_last = now

    def _usage(self, usage: dict[str, Any]) -> None:
        self.prompt_tokens = int(usage.get("prompt_tokens") or 0) or self.prompt_tokens
        self.completion_tokens = int(usage.get("completion_tokens") or 0) or self.completion_tokens

    def _delta(self, text: str, thinking: str) -> dict[str, Any]:
        base: dict[str, Any] = {"model": self.model, "created_at": now_rfc3339()}
        if self.kind == "chat":
            msg: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                msg["thinking"] = thinking
            return {**base, "message": msg, "done": False}
        out = {**base, "response": text, "done": False}
        if thinking:
            out["thinking"] = thinking
        return out

    def _final(self, **message: Any) -> dict[str, Any]:
        end = time.perf_counter()
        first = self.t_first if self.t_first is not None else end
        last = self.t_last if self.t_last is not None else end
        obj = self._delta("", "")
        if self.kind == "chat":
            obj["message"].update(message)
        else:
            obj["response"] = message.pop("content", "")
            obj.update(message)
        ns = 1_000_000_000
        obj.update({
            "done": True,
            "done_reason": _DONE_REASONS.get(self.finish_reason or "stop", self.finish_reason),
            "total_duration": max(1, int((end - self.t0) * ns)),
            "load_duration": 0,
            "prompt_eval_count": self.prompt_tokens or estimate_tokens(self.prompt_text),
            "prompt_eval_duration": max(1, int((first - self.t0) * ns)),
            "eval_count": self.completion_tokens,
            "eval_duration": max(1, int((last - first) * ns)),
        })
        return obj

    # -- complete responses ---------------------------------------------------------------

    def whole(self, data: dict[str, Any]) -> dict[str, Any]:
        """A complete chat.completion / text_completion -> one Ollama object (`done: true`)."""
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage(usage)
        choices = data.get("choices") or [{}]
        choice = _dict(choices[0])
        self.finish_reason = choice.get("finish_reason")
        msg = _dict(choice.get("message"))
        content = choice.get("text") if "text" in choice else msg.get("content")
        self.t_first = self.t0  # no first-token time without a stream: all of it is "eval"
        self.t_last = time.perf_counter()
        fields: dict[str, Any] = {"content": content or ""}
        thinking = _reasoning(msg) if self.show_thinking else ""
        if thinking:
            fields["thinking"] = thinking
        if msg.get("tool_calls") and self.kind == "chat":
            fields["tool_calls"] = ollama_tool_calls(msg["tool_calls"])
        return self._final(**fields)


def _error_message(body: bytes, status: int) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace") or f"HTTP {status}"
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or f"HTTP {status}")
    return str(err or f"HTTP {status}")


def embedding_response(model: str, t0: float, data: dict[str, Any], *, legacy: bool) -> dict[str, Any]:
    """OpenAI /v1/embeddings -> /api/embed (`embeddings`) or legacy /api/embeddings (`embedding`)."""
    rows = sorted((d for d in data.get("data") or () if isinstance(d, dict)), key=lambda d: d.get("index", 0))
    vectors = [d.get("embedding") or [] for d in rows]
    if legacy:
        return {"embedding": vectors[0] if vectors else []}
    usage = _dict(data.get("usage"))
    return {"model": model, "embeddings": vectors,
            "total_duration": max(1, int((time.perf_counter() - t0) * 1_000_000_000)),
            "load_duration": 0, "prompt_eval_count": int(usage.get("prompt_tokens") or 0)}


Whole = Callable[[dict[str, Any]], dict[str, Any]]


def ollama_adapter(relay: ASGIApp, *, stream: Converter | None = None, whole: Whole | None = None) -> RelayAdapter:
    """The gateway's relay rewritten into NDJSON lines (`stream`) or one OpenAI JSON body into
    one Ollama JSON body (`whole`)."""
    if stream is not None:
        return RelayAdapter(relay, stream=stream, stream_type=b"application/x-ndjson")
    assert whole is not None, "either a stream converter or a body converter"
    return RelayAdapter(relay, whole=functools.partial(_whole, whole))


def _whole(convert: Whole, status: int, body: bytes) -> tuple[int, bytes]:
    if status >= 400:
        return status, ndjson({"error": _error_message(body, status)})
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 502, ndjson({"error": "the engine returned a body that is not JSON"})
    if not isinstance(data, dict):
        return 502, ndjson({"error": "the engine returned an unexpected JSON body"})
    return 200, ndjson(convert(data))

