"""A worker as the router sees it: an address, load counted at dispatch, health, breaker.

A worker never holds credentials in its URL: `user:password@` is moved into `auth` (the
Authorization header value) when the worker is created, so every view of a worker (metrics
labels, /admin, the dashboard, logs, error messages) is free of secrets by construction.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from sglfleet.core.breaker import BreakerSettings, CircuitBreaker
from sglfleet.core.redact import split_credentials

_ids = itertools.count(1)


@dataclass(eq=False, slots=True)
class Worker:
    model: str
    url: str  # base URL without /v1 and without credentials, e.g. http://127.0.0.1:31000
    breaker: CircuitBreaker
    auth: str | None = field(default=None, repr=False)  # Authorization header value; never shown
    managed: bool = False
    role: str = "both"  # "both" | "prefill" | "decode"
    bootstrap_port: int | None = None
    id: str = field(default_factory=lambda: f"w{next(_ids)}")
    inflight: int = 0  # counted when the router picks the worker, not when bytes flow
    processed: int = 0
    healthy: bool = True  # from the health checker or the supervisor's probes
    ready: bool = True  # managed workers: supervisor state is READY
    draining: bool = False  # admin drain: finish in-flight, take no new requests
    stalled: bool = False  # the heartbeat gets no answer (hung engine): never sent new work
    last_error: str = ""
    last_error_at: float = 0.0
    consecutive_health_failures: int = 0
    consecutive_health_successes: int = 0
    attempts: set[Any] = field(default_factory=set, repr=False)  # live Attempts (core.exchange), settled ones leave

    @classmethod
    def create(cls, model: str, url: str, breaker_cfg: BreakerSettings, *, api_key: str | None = None,
               **kw: object) -> Worker:
        clean, basic = split_credentials(url.rstrip("/"))
        if basic is not None and api_key:
            raise ValueError("a worker URL with credentials (user:password@) and an api_key: use one of them")
        auth = f"Bearer {api_key}" if api_key else basic
        return cls(model=model, url=clean, breaker=CircuitBreaker(breaker_cfg), auth=auth, **kw)  # type: ignore[arg-type]

    @property
    def routable(self) -> bool:
        """May take new work at all: ready, not draining, answering its heartbeat."""
        return self.ready and not self.draining and not self.stalled

    @property
    def eligible(self) -> bool:
        """Routable and not ejected (health checks pass, breaker closed or half-open with room)."""
        return self.routable and self.healthy and self.breaker.allows()

    def fail(self, message: str) -> None:
        """A worker fault: counts toward opening the breaker and becomes the last error."""
        self.breaker.record_failure()
        self.note_error(message)

    def note_error(self, message: str) -> None:
        self.last_error = message[:500]
        self.last_error_at = time.time()

    def to_dict(self) -> dict[str, object]:
        """The worker's public view (no credentials: see the module docstring)."""
        return {
            "id": self.id, "model": self.model, "url": self.url, "role": self.role,
            "managed": self.managed, "ready": self.ready, "healthy": self.healthy,
            "draining": self.draining, "stalled": self.stalled, "eligible": self.eligible,
            "inflight": self.inflight, "processed": self.processed, "breaker": self.breaker.state.name.lower(),
            "last_error": self.last_error or None,
            "last_error_at": self.last_error_at or None,
        }
