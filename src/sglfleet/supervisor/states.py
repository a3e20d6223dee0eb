"""Process lifecycle state machine (no dependencies, no I/O).

    STOPPED --start--> STARTING --ready--> READY --probe fails--> UNHEALTHY
       ^                  |                  |                        |
       |               crash/timeout       crash                 kill + restart
       |                  v                  v                        v
    STOPPING <--stop-- (any live)       BACKOFF --too many crashes--> FATAL
                                            |                          |
                                            +--delay--> STARTING    reset/cool-down --> STOPPED

SLEEPING (SGLang warm sleep, supervisor/sleep.py): READY --release memory--> SLEEPING
--resume (a request, as a hold)--> STARTING ("waking") --> READY; the process lives on.

`transition()` is the only way to change state: it checks the allowed source states,
records the time and notifies listeners. An operator stop (STOPPING -> STOPPED) is kept apart
from a crash (-> BACKOFF / FATAL).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("sglfleet.supervisor")


class State(enum.Enum):
    STOPPED = "STOPPED"  # not running, by choice (never started, admin stop, evicted)
    STARTING = "STARTING"  # process spawned, waiting for the readiness probe
    READY = "READY"  # answers probes, serves requests
    UNHEALTHY = "UNHEALTHY"  # alive but a liveness probe failed; will be killed and restarted
    BACKOFF = "BACKOFF"  # crashed; waiting before the next start
    STOPPING = "STOPPING"  # SIGTERM sent, waiting for the process group to exit
    FATAL = "FATAL"  # crash circuit breaker open: too many crashes in the window
    SLEEPING = "SLEEPING"  # process alive, GPU memory released (/release_memory_occupation)


LIVE_STATES = frozenset({State.STARTING, State.READY, State.UNHEALTHY})

ALLOWED_FROM: dict[State, frozenset[State]] = {
    State.STARTING: frozenset({State.STOPPED, State.BACKOFF, State.SLEEPING}),
    State.READY: frozenset({State.STARTING, State.UNHEALTHY}),
    State.UNHEALTHY: frozenset({State.READY}),
    State.BACKOFF: frozenset({State.STARTING, State.READY, State.UNHEALTHY, State.SLEEPING}),
    State.STOPPING: frozenset({State.STARTING, State.READY, State.UNHEALTHY, State.BACKOFF, State.SLEEPING}),
    State.STOPPED: frozenset({State.STOPPING, State.BACKOFF, State.FATAL}),
    State.FATAL: frozenset({State.STARTING, State.READY, State.UNHEALTHY, State.BACKOFF, State.SLEEPING}),
    State.SLEEPING: frozenset({State.READY}),
}


class IllegalTransition(RuntimeError):
    """A state change that the lifecycle does not allow (a programming error)."""


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    src: State
    dst: State
    reason: str
    at: float  # time.time()


Listener = Callable[[Transition], None]


class Lifecycle:
    """The current state of one supervised worker plus its transition history."""

    def __init__(self, name: str, listeners: list[Listener] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.clock = clock  # injectable for tests
        self.state = State.STOPPED
        self.since = clock()
        self.reason = ""
        self.history: list[Transition] = []
        self._listeners = list(listeners or [])

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def transition(self, dst: State, reason: str = "") -> Transition:
        src = self.state
        if src not in ALLOWED_FROM[dst]:
            raise IllegalTransition(f"{self.name}: {src.value} -> {dst.value} is not allowed ({reason})")
        t = Transition(self.name, src, dst, reason, self.clock())
        self.state, self.since, self.reason = dst, t.at, reason
        self.history.append(t)
        del self.history[:-50]
        log.info("%s: %s -> %s%s", self.name, src.value, dst.value, f" ({reason})" if reason else "")
        for listener in self._listeners:
            listener(t)
        return t

    def is_live(self) -> bool:
        return self.state in LIVE_STATES
