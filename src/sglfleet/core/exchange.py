"""One client request (an Exchange) and each try of it on one worker (an Attempt).

An Attempt owns what a try holds on its worker: the in-flight slot (taken at dispatch), the
breaker permit (a half-open probe slot) and the upstream response. `close(verdict)` releases
all of it exactly once and tells the worker's breaker what happened:

    SUCCESS        the worker answered             -> breaker success
    WORKER_FAULT   connect error, broken stream,   -> breaker failure + last error
                   a 5xx that did not follow the request
    DEADLINE       no first byte / a stall past    -> breaker failure (the worker is stuck)
                   the model's deadline
    REQUEST_FAULT  the engine rejected the request -> no verdict: one client's bad requests
                   (4xx, or a 5xx that followed it)   never eject a worker for everyone
    CLIENT_GONE    the client left                 -> no verdict

A 5xx is not blamed at once: the attempt is *settled* (slot and connection released) and kept
as a suspect until the exchange knows more. If another worker then answers the same request,
the suspects were worker faults; if every worker tried failed, or a known-good probe says the
lone worker is fine, the fault followed the request.

An Exchange owns the model's limiter slot, its attempts and its suspects; `close()` settles
everything that is left (idempotent). `abort()` ends it early (gateway shutdown).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sglfleet.core.route import Decision


@dataclass(frozen=True, slots=True)
class Deadlines:
    """A model's limits for one attempt (docs/reliability.md)."""

    first_byte_s: float  # dispatch -> a stream's first byte
    stall_s: float  # the longest gap between two bytes of a stream
    total_s: float  # the whole attempt; also the bound of a non-streamed answer

    def apply(self, attempt: Attempt, *, stream: bool) -> None:
        attempt.first_limit_s = self.first_byte_s if stream else self.total_s
        attempt.stall_limit_s = self.stall_s
        attempt.total_limit_s = self.total_s


class Verdict(enum.Enum):
    SUCCESS = "success"
    WORKER_FAULT = "worker_fault"
    REQUEST_FAULT = "request_fault"
    CLIENT_GONE = "client_gone"
    DEADLINE = "deadline"


class UpstreamResponse(Protocol):
    def close(self) -> None: ...

    def release(self) -> Any: ...


class Attempt:
    # No reference back to the Exchange: a cycle per request would leave every request's
    # objects to the garbage collector instead of reference counting (docs/performance.md).
    __slots__ = ("observe", "decision", "worker", "response", "first", "verdict", "started_at",
                 "first_byte_at", "last_byte_at", "first_limit_s", "stall_limit_s", "total_limit_s", "complete",
                 "expired", "waiter", "_settled")

    def __init__(self, decision: Decision, observe: Callable[[str, str], None] | None = None) -> None:
        self.observe = observe  # (worker id, verdict) -> metrics
        self.decision = decision
        w = self.worker = decision.worker
        w.inflight += 1  # counted at dispatch time
        w.processed += 1
        w.breaker.acquire()
        w.attempts.add(self)
        self.response: UpstreamResponse | None = None
        self.first = b""  # a stream's first body piece, read while the attempt could still be retried
        self.verdict: Verdict | None = None
        self.started_at = self.last_byte_at = time.monotonic()
        self.first_byte_at: float | None = None
        self.first_limit_s: float | None = None  # from dispatch to the first byte (None = unbounded)
        self.stall_limit_s: float | None = None  # between two bytes once the first arrived
        self.total_limit_s: float | None = None  # from dispatch to the last byte
        self.complete = False  # the upstream body was read to its end (connection reusable)
        self.expired: str | None = None  # why a deadline ended it (set by the watchdog/heartbeat)
        self.waiter: asyncio.Task[Any] | None = None  # the task awaiting the first byte
        self._settled = False

    def check_deadline(self, now: float) -> None:
        """Called periodically (the fleet's deadline ticker): expire when a limit has passed."""
        if self.first_byte_at is None:
            if self.first_limit_s is not None and now - self.started_at > self.first_limit_s:
                self.expire(f"no first byte within {self.first_limit_s:g}s")
        elif self.stall_limit_s is not None and now - self.last_byte_at > self.stall_limit_s:
            self.expire(f"stalled: no byte for {self.stall_limit_s:g}s")
        elif self.total_limit_s is not None and now - self.started_at > self.total_limit_s:
            self.expire(f"not finished within the total limit of {self.total_limit_s:g}s")

    def expire(self, reason: str) -> None:
        """A deadline passed (or the worker stalled): unblock whoever waits on this attempt.
        The waiter sees `expired` and closes the attempt with DEADLINE."""
        if self.verdict is not None or self.expired is not None:
            return
        self.expired = reason
        if self.response is not None:
            self.response.close()  # a pending read raises; the reader checks `expired`
        if self.waiter is not None and not self.waiter.done():
            self.waiter.cancel()

    def absorb_expiry(self) -> bool:
        """In an `except CancelledError` of the waiter: True (and the cancellation undone)
        when it came from `expire`, not from anywhere else."""
        task = asyncio.current_task()
        if self.expired is not None and task is self.waiter and task is not None and task.cancelling():
            task.uncancel()
            return True
        return False

    @property
    def settled(self) -> bool:
        return self._settled

    def settle(self) -> None:
        """Free the worker slot and the connection; the breaker permit waits for `close`."""
        if self._settled:
            return
        self._settled = True
        self.waiter = None
        w = self.worker
        w.inflight -= 1
        w.attempts.discard(self)
        resp = self.response
        if resp is not None:
            if self.complete:
                resp.release()  # read to its end: keep-alive connection back to the pool
            else:
                resp.close()  # an aborted body must never be reused

    def close(self, verdict: Verdict, message: str = "") -> None:
        if self.verdict is not None:
            return
        self.verdict = verdict
        self.settle()
        w = self.worker
        if self.observe is not None:
            self.observe(w.id, verdict.value)
        if verdict is Verdict.SUCCESS:
            w.breaker.record_success()
        elif verdict is Verdict.WORKER_FAULT or verdict is Verdict.DEADLINE:
            w.fail(message or verdict.value)
        else:
            w.breaker.release()


class Exchange:
    """One client request from admission to its last byte."""

    __slots__ = ("request_id", "model", "t0", "attempts", "suspects", "aborted", "_release", "_registry",
                 "closed", "task", "observe")

    def __init__(self, request_id: str, model: str, *, registry: set[Exchange] | None = None,
                 t0: float | None = None) -> None:
        self.request_id = request_id
        self.model = model
        self.t0 = time.perf_counter() if t0 is None else t0
        self.attempts: list[Attempt] = []
        self.suspects: list[tuple[Attempt, str]] = []
        self.aborted: str | None = None
        self._release: Callable[[], None] | None = None  # the limiter slot
        self._registry = registry
        self.closed = False
        self.task: asyncio.Task[Any] | None = None  # the task that admits and dispatches it
        self.observe: Callable[[str, str], None] | None = None  # (worker id, verdict) -> metrics
        if registry is not None:
            registry.add(self)

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def admitted(self, release: Callable[[], None]) -> None:
        """The model's limiter let this request in; `release` frees the slot on close."""
        self._release = release

    def attempt(self, decision: Decision) -> Attempt:
        a = Attempt(decision, self.observe)
        self.attempts.append(a)
        return a

    def suspect(self, attempt: Attempt, message: str) -> None:
        """A 5xx whose blame is not known yet (see the module docstring)."""
        attempt.settle()
        self.suspects.append((attempt, message))

    def judge_suspects(self, worker_fault: bool) -> None:
        verdict = Verdict.WORKER_FAULT if worker_fault else Verdict.REQUEST_FAULT
        for attempt, message in self.suspects:
            attempt.close(verdict, message)
        self.suspects.clear()

    def failed_workers(self) -> set[str]:
        return {a.worker.id for a, _ in self.suspects}

    def abort(self, reason: str) -> None:
        """End the exchange early (gateway shutdown): its current attempt is expired, or the
        task still waiting to dispatch it (queue, load) is cancelled (see `absorb_abort`)."""
        if self.aborted is not None:
            return
        self.aborted = reason
        current = self.current
        if current is not None and not current.settled:
            current.expire(reason)
        elif self.task is not None and not self.task.done():
            self.task.cancel()

    def absorb_abort(self) -> bool:
        """In an `except CancelledError` of `task`: True (and the cancellation undone) when
        it came from `abort`."""
        task = asyncio.current_task()
        if self.aborted is not None and task is self.task and task is not None and task.cancelling():
            task.uncancel()
            return True
        return False

    def close(self, verdict: Verdict = Verdict.CLIENT_GONE, message: str = "") -> None:
        """Settle everything left: open attempts get `verdict`; suspects are worker faults if
        the exchange ended in success on another worker, request faults otherwise."""
        if self.closed:
            return
        self.closed = True
        self.judge_suspects(worker_fault=verdict is Verdict.SUCCESS)
        for a in self.attempts:
            a.close(verdict, message)  # (no-op for the attempts already judged)
        if self._release is not None:
            self._release()
            self._release = None
        if self._registry is not None:
            self._registry.discard(self)
