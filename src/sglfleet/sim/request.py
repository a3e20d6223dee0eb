"""A generation request as the engine sees it, and the parsed sampling inputs."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sglfleet.sim.radix_cache import Node
from sglfleet.sim.tokenizer import OutputSampler


@dataclass(frozen=True, kw_only=True)
class Bootstrap:
    """SGLang's PD pairing fields from the request body."""

    host: str | None
    port: int | None
    room: int


@dataclass(frozen=True, kw_only=True)
class GenParams:
    """Everything a route parsed from its body, common to OpenAI and native shapes."""

    prompt_ids: list[int]
    max_new_tokens: int
    seed_ids: list[int] = field(default_factory=list)  # the prompt the output is a function of
    offset: int = 0  # output words already in the prompt (a continuation)
    stream: bool = False
    ignore_eos: bool = False
    include_usage: bool = False
    rid: str | None = None
    bootstrap: Bootstrap | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class SimRequest:
    """Mutable per-request state shared by the engine (producer) and a route (consumer)."""

    __slots__ = (
        "rid",
        "prompt_ids",
        "max_new_tokens",
        "ignore_eos",
        "sampler",
        "output",
        "cached_tokens",
        "finish_reason",
        "error",
        "created",
        "admitted_at",
        "first_token_at",
        "last_token_at",
        "finished_at",
        "reserved",
        "node",
        "prefilled",
        "_event",
    )

    def __init__(self, params: GenParams, sampler: OutputSampler, *, prefilled: bool = False):
        self.rid = params.rid or uuid.uuid4().hex
        self.prompt_ids = params.prompt_ids
        self.max_new_tokens = params.max_new_tokens
        self.ignore_eos = params.ignore_eos
        self.sampler = sampler
        self.output: list[str] = []  # output pieces ("sim-123")
        self.cached_tokens = 0
        self.finish_reason: str | None = None  # "length", "stop", "abort"
        self.error: str | None = None
        self.created = time.perf_counter()
        self.admitted_at: float | None = None
        self.first_token_at: float | None = None
        self.last_token_at = 0.0
        self.finished_at: float | None = None
        self.reserved = 0  # KV tokens held outside the radix tree
        self.node: Node | None = None  # locked radix node
        self.prefilled = prefilled  # PD decode: KV arrives by transfer, no prefill
        self._event = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.output)

    def notify(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        """Wait until new output or the end is available."""
        await self._event.wait()
        self._event.clear()
