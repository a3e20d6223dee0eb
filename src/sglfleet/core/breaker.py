"""Per-worker circuit breaker.

CLOSED --N consecutive failures--> OPEN --open_s elapsed--> HALF_OPEN
HALF_OPEN lets at most `half_open_max_requests` requests through at a time (SGLang's router
lets every request through, which floods a worker that is still sick); M consecutive
successes close it, any failure opens it again.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Protocol


class BreakerSettings(Protocol):
    """The breaker's knobs (config's BreakerConfig has them)."""

    @property
    def failure_threshold(self) -> int: ...
    @property
    def success_threshold(self) -> int: ...
    @property
    def open_s(self) -> float: ...
    @property
    def half_open_max_requests(self) -> int: ...


class BreakerState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(self, cfg: BreakerSettings, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[BreakerState, BreakerState], None] | None = None) -> None:
        self.cfg = cfg
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self.failures = 0
        self.successes = 0
        self.opened_at = 0.0
        self.half_open_inflight = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self.opened_at >= self.cfg.open_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def _set(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if new is BreakerState.OPEN:
            self.opened_at = self._clock()
        if new is not BreakerState.CLOSED:
            self.successes = 0
        self.half_open_inflight = 0
        if old is not new and self._on_change:
            self._on_change(old, new)

    def allows(self) -> bool:
        """May a request be sent now? (Does not reserve a half-open slot; see acquire.)"""
        s = self.state
        return s is BreakerState.CLOSED or (
            s is BreakerState.HALF_OPEN and self.half_open_inflight < self.cfg.half_open_max_requests
        )

    def acquire(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self.half_open_inflight += 1

    def release(self) -> None:
        """Give back a half-open slot without a verdict on the worker (client left, request
        cancelled): neither a success nor a failure."""
        if self._state is BreakerState.HALF_OPEN:
            self.half_open_inflight = max(0, self.half_open_inflight - 1)

    def record_success(self) -> None:
        self.failures = 0
        s = self.state
        if s is BreakerState.HALF_OPEN:
            self.half_open_inflight = max(0, self.half_open_inflight - 1)
            self.successes += 1
            if self.successes >= self.cfg.success_threshold:
                self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        s = self.state
        if s is BreakerState.HALF_OPEN:
            self._set(BreakerState.OPEN)
            return
        self.failures += 1
        if s is BreakerState.CLOSED and self.failures >= self.cfg.failure_threshold:
            self._set(BreakerState.OPEN)

    def half_open_now(self) -> None:
        """Evidence the worker is back (it answers its heartbeat again after a stall): let the
        half-open probes confirm it now instead of waiting out `open_s`."""
        if self.state is BreakerState.OPEN:
            self._set(BreakerState.HALF_OPEN)

    def reset(self) -> None:
        self.failures = 0
        self._set(BreakerState.CLOSED)
