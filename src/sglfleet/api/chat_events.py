"""OpenAI chat output as a neutral sequence of events, streamed or whole.

The Anthropic and Responses adapters build their blocks / output items from these events
only, and a complete `chat.completion` is turned into the same events as its stream would
be: so a streamed answer and a non-streamed one go through one code path and end as the same
final object.

    Reasoning(text)             reasoning_content / reasoning
    Text(text)                  content
    ToolStart(index, id, name)  the first delta of a tool call
    ToolArgs(index, fragment)   its arguments, in fragments
    Finish(reason, matched)     finish_reason (and SGLang's matched_stop when present)
    Usage(prompt, completion, cached)
    Failure(message)            an error event in the stream
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Reasoning:
    text: str


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class ToolStart:
    index: int
    id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class ToolArgs:
    index: int
    fragment: str


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str | None
    matched: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt: int
    completion: int
    cached: int = 0


@dataclass(frozen=True, slots=True)
class Failure:
    message: str


Event = Reasoning | Text | ToolStart | ToolArgs | Finish | Usage | Failure


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reasoning(obj: dict[str, Any]) -> str:
    value = obj.get("reasoning_content") or obj.get("reasoning")
    return value if isinstance(value, str) else ""


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    details = _dict(usage.get("prompt_tokens_details"))
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                 int(details.get("cached_tokens") or 0))


def _args(raw: Any) -> str:
    if raw is None:
        return ""
    return raw if isinstance(raw, str) else orjson.dumps(raw).decode()


def _matched(choice: dict[str, Any]) -> str | None:
    matched = choice.get("matched_stop")
    return matched if isinstance(matched, str) else None


class ChunkEvents:
    """Events of a stream of `chat.completion.chunk` objects (choice 0 only). Tool calls are
    keyed by the engine's `index`; a delta naming a new index starts a new call."""

    def __init__(self) -> None:
        self._started: set[int] = set()

    def events(self, chunk: dict[str, Any]) -> Iterator[Event]:
        if chunk.get("error"):
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            yield Failure(str(msg or "the engine failed during generation"))
            return
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _dict(choice.get("delta"))
            reasoning = _reasoning(delta)
            if reasoning:
                yield Reasoning(reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                yield Text(content)
            for tc in delta.get("tool_calls") or ():
                if isinstance(tc, dict):
                    yield from self._tool(tc)
            if choice.get("finish_reason"):
                yield Finish(choice["finish_reason"], _matched(choice))
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            yield usage

    def _tool(self, tc: dict[str, Any]) -> Iterator[Event]:
        index = tc.get("index")
        if not isinstance(index, int):  # engines that omit it: an id starts a new call
            index = len(self._started) if tc.get("id") or not self._started else max(self._started)
        fn = _dict(tc.get("function"))
        if index not in self._started:
            self._started.add(index)
            yield ToolStart(index, tc.get("id") or None, str(fn.get("name") or ""))
        args = _args(fn.get("arguments"))
        if args:
            yield ToolArgs(index, args)


def completion_events(data: dict[str, Any]) -> Iterator[Event]:
    """Events of one complete `chat.completion`, in the order its stream would send them."""
    choices = data.get("choices") or [{}]
    choice = _dict(choices[0])
    msg = _dict(choice.get("message"))
    reasoning = _reasoning(msg)
    if reasoning:
        yield Reasoning(reasoning)
    content = msg.get("content")
    if isinstance(content, str) and content:
        yield Text(content)
    for i, tc in enumerate(msg.get("tool_calls") or ()):
        if not isinstance(tc, dict):
            continue
        fn = _dict(tc.get("function"))
        yield ToolStart(i, tc.get("id") or None, str(fn.get("name") or ""))
        args = _args(fn.get("arguments"))
        if args:
            yield ToolArgs(i, args)
    yield Finish(choice.get("finish_reason"), _matched(choice))
    usage = _usage(data.get("usage"))
    if usage is not None:
        yield usage
