"""What a policy sees for one request, and what it decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sglfleet.core.worker import Worker


@dataclass(slots=True)
class RouteContext:
    """Everything a policy may look at for one request."""

    text: str = ""  # routing text: all messages' content, or the prompt
    routing_key: str | None = None  # e.g. X-Session-ID
    exclude: set[str] = field(default_factory=set)  # workers that already failed this request
    panic: bool = False  # set by the policy when every worker was ejected and it routed anyway
    body: dict[str, Any] | None = None  # the request body, for policies that tokenize like the engine


@dataclass(slots=True)
class Decision:
    worker: Worker
    cache_hit: bool | None = None  # cache_aware: prefix matched above threshold
    matched_chars: int = 0
    predicted_cached_tokens: int | None = None  # kv_events: prompt tokens the engine should have cached
