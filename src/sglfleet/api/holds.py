"""Cold-start holds: a request for a model that is loading (on demand, restarting after a
crash, restarting in a rolling restart, waking from sleep) waits for it, bounded, instead of
getting 503 at once.

* The bound is the model's `hold.max_s` (default: the on-demand load bound,
  `min(queue_timeout_s, restart.startup_timeout_s)`).
* A stream (OpenAI routes) gets its response head at once, then an SSE comment every
  `hold.comment_interval_s` (2 s) until the first token:
  `: sglfleet: loading <model> <phase> <progress>% eta <s>s` from the supervisor's readiness
  progress; the time left is learned from previous loads of the same model. SDKs ignore
  comments; proxies and clients see bytes and keep the connection.
* Past the bound: 503 with Retry-After set from the load's time left. A stream whose head
  already went out ends with an error event (code `model_loading`, the same message) and
  `[DONE]`; when the learned time left already exceeds the bound, the 503 comes at once,
  before any head.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sglfleet.api.relay import DONE, sse_error_event
from sglfleet.core.errors import ClientGone, GatewayError, Unavailable

if TYPE_CHECKING:
    from sglfleet.fleet import Fleet
    from sglfleet.routing.pool import Pool
    from sglfleet.supervisor.model import LoadStatus, ModelSupervisor


class ModelLoading(Unavailable):
    code = "model_loading"


def comment(model: str, status: LoadStatus) -> bytes:
    pct = "?" if status.progress is None else f"{status.progress * 100:.0f}"
    eta = "?" if status.eta_s is None else f"{status.eta_s:.0f}"
    return f": sglfleet: loading {model} {status.phase} {pct}% eta {eta}s\n\n".encode()


@dataclass(slots=True)
class Hold:
    fleet: Fleet
    pool: Pool
    sup: ModelSupervisor
    bound_s: float
    started: float = 0.0

    def retry_after(self) -> int:
        eta = self.sup.load_status().eta_s
        return max(1, math.ceil(eta)) if eta is not None else 10

    def _record(self, outcome: str) -> None:
        m = self.fleet.metrics
        m.holds.labels(self.pool.name, outcome).inc()
        m.hold_time.labels(self.pool.name).observe(time.monotonic() - self.started)

    async def wait(self) -> None:
        """Wait for the model within the bound; ModelLoading (503, Retry-After) past it."""
        self.started = time.monotonic()
        try:
            async with asyncio.timeout(self.bound_s):
                await self.pool.ensure_ready()
        except TimeoutError:
            self._record("timeout")
            st = self.sup.load_status()
            raise ModelLoading(f"model {self.pool.name!r} is still loading ({st.phase}) after {self.bound_s:g}s; "
                               f"retry later", retry_after_s=self.retry_after()) from None
        except asyncio.CancelledError:
            self._record("gone")
            raise
        except Unavailable as exc:
            self._record("failed")
            exc.headers["retry-after"] = str(self.retry_after())
            raise
        self._record("served")


def plan(fleet: Fleet, pool: Pool) -> Hold | None:
    """A hold for a managed model that has no worker to serve now; None otherwise. Raises
    ModelLoading at once when the learned time left is beyond the bound."""
    sup = fleet.supervisors.get(pool.name)
    if sup is None or sup.serving() or pool.failure:  # (an ejected but loaded worker: no hold)
        return None
    cfg = pool.cfg
    bound = cfg.hold.max_s or min(cfg.queue_timeout_s, cfg.restart.startup_timeout_s)
    hold = Hold(fleet, pool, sup, bound)
    eta = sup.load_status().eta_s
    if eta is not None and eta > bound:
        fleet.metrics.holds.labels(pool.name, "timeout").inc()
        raise ModelLoading(f"model {pool.name!r} is loading and needs about {eta:.0f}s more (hold bound "
                           f"{bound:g}s)", retry_after_s=hold.retry_after())
    return hold


Start = Callable[[], Awaitable[Any]]  # waits for the model, admits, dispatches; returns the relay
Failed = Callable[[GatewayError], None]  # counts and logs a request refused during the hold


class HeldStream:
    """The ASGI response of a stream held for its model: the head at once, comments until the
    first token, then the relay (told the head went out)."""

    sets_request_id = True  # (api/app.py sends without the request-id wrapper)

    def __init__(self, hold: Hold, start: Start, *, request_id: str, headers: dict[str, str],
                 failed: Failed) -> None:
        self.hold = hold
        self.start = start
        self.request_id = request_id
        self.headers = headers
        self.failed = failed

    async def _comments(self, send: Callable[..., Awaitable[None]]) -> None:
        hold = self.hold
        interval = hold.pool.cfg.hold.comment_interval_s
        while True:
            await send({"type": "http.response.body", "body": comment(hold.pool.name, hold.sup.load_status()),
                        "more_body": True})
            await asyncio.sleep(interval)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                   (b"x-request-id", self.request_id.encode())]
        headers += [(k.encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        ticker = (asyncio.ensure_future(self._comments(send)) if self.hold.pool.cfg.hold.comments else None)
        try:
            relay = await self.start()
        except ClientGone:
            return  # counted by forward; nobody to tell
        except GatewayError as exc:
            self.failed(exc)
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(BaseException):
                    await ticker
                ticker = None
            after = exc.headers.get("retry-after")
            msg = f"{exc.message} (retry after {after}s)" if after else exc.message
            body = sse_error_event(exc.status, msg, exc.code or "upstream_error") + DONE
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(BaseException):
                    await ticker
        relay.started = True
        await relay(scope, receive, send)
