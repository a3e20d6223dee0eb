"""Mid-stream migration: a stream whose worker fails after bytes reached the client continues
on another worker of the model, and the client's stream stays open.

The failure is a broken connection, an error event inside the stream, or a stall past the
model's deadline (the attempt is expired and its read breaks). The relay then asks
`Migration.resume`, which

1. refuses what cannot continue faithfully (`n > 1`, constrained decoding, logprobs, a
   non-text prompt; tool calls or reasoning already in the output), and ends after
   `migration.max_attempts` continuations;
2. closes the failed attempt with its verdict (worker fault or deadline) and opens a new
   Attempt on the same Exchange through `fleet.dispatcher.open` (the failed workers excluded),
   with a continuation request:
   * chat on engines with `continue_final_message` (SGLang, vLLM): the original messages plus
     the text so far as a final assistant message;
   * chat on llama.cpp: the GGUF's chat template rendered by the gateway, plus the text so
     far, on `/v1/completions` (tokenized there as the chat path tokenizes); its chunks are
     turned back into chat chunks;
   * completions: the prompt plus the text so far;
   and `max_tokens` lowered by the tokens already produced (one content event = one token, as
   engines stream at stream_interval 1).
3. rewrites the continuation's events: the first attempt's chunk id and model name, no second
   role chunk, and one `usage` for the whole answer (the continuation's prompt tokens include
   the text so far: they move to the completion side).

Only whole events are forwarded while a migration is possible, so a connection that breaks in
the middle of an event never leaves half of it at the client; no byte is sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from sglfleet.api.adapter import sse_objects
from sglfleet.core.errors import GatewayError, UpstreamError
from sglfleet.core.exchange import Exchange, Verdict
from sglfleet.core.route import RouteContext
from sglfleet.routing.pool import ModelPool, Pool
from sglfleet.upstream.dispatch import Opened

if TYPE_CHECKING:
    from sglfleet.api.link import ClientLink
    from sglfleet.fleet import Fleet

log = logging.getLogger("sglfleet")

_CONSTRAINED = ("json_schema", "regex", "ebnf", "grammar", "structural_tag", "guided_json", "guided_regex",
                "guided_grammar", "guided_choice", "guided_decoding_backend")


class ErrorEvent(ConnectionError):
    """The engine sent an error event inside a stream (caught by the relay like a broken read)."""


def refusal_reason(data: dict[str, Any], chat: bool) -> str | None:
    """Why this request's stream cannot be continued elsewhere (None: it can)."""
    if (data.get("n") or 1) > 1 or (data.get("best_of") or 1) > 1:
        return "n > 1"
    fmt = data.get("response_format")
    if isinstance(fmt, dict) and (fmt.get("type") == "json_schema" or fmt.get("schema") is not None):
        return "constrained decoding (response_format)"
    if any(data.get(k) is not None for k in _CONSTRAINED):
        return "constrained decoding"
    if data.get("logprobs") or data.get("top_logprobs"):
        return "logprobs"
    if not chat and not isinstance(data.get("prompt"), str):
        return "the prompt is not one string"
    if not chat and data.get("echo"):
        return "echo"
    return None


@dataclass(slots=True)
class SoFar:
    """What the client has received: parsed from the forwarded events when a worker fails."""

    text: str = ""
    tokens: int = 0
    chunk_id: str | None = None
    model: str | None = None
    created: int | None = None
    other_output: str | None = None  # tool calls / reasoning: cannot be continued
    finished: bool = False


def read_events(raw: bytes, chat: bool) -> SoFar:
    out = SoFar()
    parts: list[str] = []
    for data in (d for event in raw.split(b"\n\n") for d in sse_objects(event)):
        if out.chunk_id is None and isinstance(data.get("id"), str):
            out.chunk_id, out.model, out.created = data["id"], data.get("model"), data.get("created")
        for choice in data.get("choices") or ():
            if choice.get("finish_reason"):
                out.finished = True
            if chat:
                delta = choice.get("delta") or {}
                if delta.get("tool_calls") or delta.get("function_call"):
                    out.other_output = "tool calls"
                if delta.get("reasoning_content") or delta.get("reasoning"):
                    out.other_output = "reasoning"
                piece = delta.get("content")
            else:
                piece = choice.get("text")
            if isinstance(piece, str) and piece:
                parts.append(piece)
                out.tokens += 1
    out.text = "".join(parts)
    return out


@dataclass(slots=True)
class Leg:
    """How the events of one continuation are rewritten for the client."""

    so_far: SoFar
    chat: bool
    as_chat: bool  # a /v1/completions continuation of a chat: events become chat chunks
    started: bool = False  # a content event went out
    carry: bytes = b""


@dataclass(slots=True)
class Migration:
    fleet: Fleet
    pool: ModelPool
    exchange: Exchange
    data: dict[str, Any]  # the upstream body as first sent
    path: str
    ctx: RouteContext
    link: ClientLink
    chat: bool
    max_attempts: int
    workers: list[str] = field(default_factory=list)  # every worker that served part of the answer
    raw: list[bytes] = field(default_factory=list)  # whole events forwarded so far
    carry: bytes = b""
    leg: Leg | None = None
    used: int = 0

    # -- per piece (the relay calls these while a migration is possible) -------------------
    def take(self, piece: bytes) -> bytes:
        """The whole events of a piece (an incomplete tail waits for the next piece), rewritten
        for the client when they come from a continuation; raises ErrorEvent on an error event."""
        if self.carry:
            piece, self.carry = self.carry + piece, b""
        if not piece.endswith(b"\n\n"):
            cut = piece.rfind(b"\n\n") + 2
            piece, self.carry = piece[:cut], piece[cut:]
        if self.leg is not None:
            piece = self._rewrite(piece, self.leg)
        elif b'"error"' in piece or b'"object":"error"' in piece:
            self._check_errors(piece)
        if piece:
            self.raw.append(piece)
        return piece

    def _check_errors(self, piece: bytes) -> None:
        for event in piece.split(b"\n\n"):
            if event.startswith(b"data: {"):
                try:
                    data = orjson.loads(event[6:])
                except orjson.JSONDecodeError:
                    continue
                if isinstance(data, dict) and ("error" in data and not data.get("choices")
                                               or data.get("object") == "error"):
                    err = data.get("error") if isinstance(data.get("error"), dict) else data
                    raise ErrorEvent(str(err.get("message") or "error event")[:300])

    def _rewrite(self, piece: bytes, leg: Leg) -> bytes:
        out: list[bytes] = []
        sf = leg.so_far
        for event in piece.split(b"\n\n"):
            if not event:
                continue
            if not event.startswith(b"data: {"):
                out.append(event + b"\n\n")  # [DONE], comments
                continue
            try:
                data = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            if "error" in data and not data.get("choices") or data.get("object") == "error":
                err = data.get("error") if isinstance(data.get("error"), dict) else data
                raise ErrorEvent(str(err.get("message") or "error event")[:300])
            choices = data.get("choices") or []
            if leg.as_chat:
                choices = [{"index": c.get("index", 0), "delta": {"content": c["text"]} if c.get("text") else {},
                            "logprobs": None, "finish_reason": c.get("finish_reason")} for c in choices]
                data["object"] = "chat.completion.chunk"
            if leg.chat and not leg.started:  # the continuation's own role chunk is not repeated
                choices = [c for c in choices if (c.get("delta") or {}).get("content") or c.get("finish_reason")]
                if not choices and data.get("usage") is None:
                    continue
            if any(c.get("text") or (c.get("delta") or {}).get("content") for c in choices):
                leg.started = True
            data["choices"] = choices
            if sf.chunk_id is not None:
                data["id"] = sf.chunk_id
            if sf.model is not None:
                data["model"] = sf.model
            if sf.created is not None:
                data["created"] = sf.created
            usage = data.get("usage")
            if isinstance(usage, dict):  # one usage for the whole answer
                prompt = int(usage.get("prompt_tokens") or 0)
                completion = int(usage.get("completion_tokens") or 0)
                moved = min(sf.tokens, prompt)
                usage["prompt_tokens"], usage["completion_tokens"] = prompt - moved, completion + moved
                usage["total_tokens"] = prompt + completion
            out.append(b"data: " + orjson.dumps(data) + b"\n\n")
        return b"".join(out)

    # -- on failure ------------------------------------------------------------------------
    def _count(self, outcome: str) -> None:
        self.fleet.metrics.migrations.labels(self.pool.name, outcome).inc()

    async def resume(self, opened: Opened, err: UpstreamError, verdict: Verdict) -> Opened | None:
        """Continue on another worker; None (the relay ends with the error event) when the
        stream cannot continue. The failed attempt is closed here either way."""
        opened.attempt.close(verdict, err.message)
        if not self.workers:
            self.workers.append(opened.worker.id)
        if self.used >= self.max_attempts:
            self._count("exhausted")
            return None
        so_far = read_events(b"".join(self.raw), self.chat)
        if self.leg is not None:  # the first leg's id/model/created stay the reference
            first = self.leg.so_far
            so_far.chunk_id, so_far.model, so_far.created = first.chunk_id, first.model, first.created
        why = refusal_reason(self.data, self.chat) or so_far.other_output
        body_path = None if why else await self._continuation(so_far)
        if body_path is None:
            why = why or "the engine cannot continue this answer"
            self._count("refused")
            log.info("rid=%s model=%s: stream broke on %s and cannot migrate (%s)", self.exchange.request_id,
                     self.pool.name, opened.worker.id, why)
            return None
        body, path, as_chat = body_path
        self.used += 1
        self.ctx.exclude.add(opened.worker.id)
        self.link.wait_again()  # a client leaving now cancels the open below
        try:
            nxt = await self.fleet.dispatcher.open(self.exchange, self.pool, path, orjson.dumps(body), self.ctx,
                                                   stream=True)
        except GatewayError as exc:
            self._count("failed")
            log.warning("rid=%s model=%s: migration after %s failed: %s", self.exchange.request_id,
                        self.pool.name, opened.worker.id, exc.message)
            return None
        except asyncio.CancelledError:
            if self.link.absorb_cancel():
                return None  # the client left: the relay sees link.disconnected
            raise
        self._count("migrated")
        self.workers.append(nxt.worker.id)
        self.leg = Leg(so_far, self.chat, as_chat)
        self.carry = b""
        log.info("rid=%s model=%s: stream moved from %s to %s after %d tokens (%s)", self.exchange.request_id,
                 self.pool.name, opened.worker.id, nxt.worker.id, so_far.tokens, err.message)
        return nxt

    async def _continuation(self, so_far: SoFar) -> tuple[dict[str, Any], str, bool] | None:
        """(body, path, chunks need converting to chat) of the continuation request."""
        body = dict(self.data)
        for key in ("max_tokens", "max_completion_tokens"):
            if isinstance(body.get(key), int):
                left = body[key] - so_far.tokens
                if left < 1:
                    return None  # the answer was complete but for its last chunk
                body[key] = left
        if not self.chat:
            body["prompt"] = self.data["prompt"] + so_far.text
            return body, self.path, False
        mode = self.pool.engine.continuation
        if mode == "chat":
            body["messages"] = [*self.data["messages"], {"role": "assistant", "content": so_far.text}]
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
            return body, self.path, False
        if mode == "template":
            counter = self.fleet.prompt_counter(self.pool)
            rendered = await asyncio.to_thread(counter.render, self.data["messages"],
                                               self.data.get("tools")) if counter is not None else None
            if rendered is None:
                return None
            prompt, stops = rendered
            keep = ("model", "temperature", "top_p", "top_k", "min_p", "seed", "presence_penalty",
                    "frequency_penalty", "repeat_penalty", "max_tokens", "stream", "stream_options", "user")
            body = {k: body[k] for k in keep if k in body}
            user_stop = self.data.get("stop")
            body["stop"] = [*stops, *([user_stop] if isinstance(user_stop, str) else user_stop or [])]
            body["prompt"] = prompt + so_far.text
            return body, "/v1/completions", True
        return None


def plan(fleet: Fleet, pool: Pool, exchange: Exchange, data: dict[str, Any], path: str, ctx: RouteContext,
         link: ClientLink, *, stream: bool) -> Migration | None:
    """The migration of a stream about to be relayed (None when the model disables it)."""
    limit = pool.cfg.migration.max_attempts
    if not stream or not limit or not isinstance(pool, ModelPool):
        return None
    return Migration(fleet, pool, exchange, data, path, ctx, link, chat=path.endswith("/chat/completions"),
                     max_attempts=limit)
