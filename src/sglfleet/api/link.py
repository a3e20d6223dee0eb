"""The client's side of one exchange: one watcher task for the whole request, from admission
to the last byte. If the client leaves while we wait (for a slot, a model load, the engine's
response headers), the waiting is cancelled; once the engine's response is open, the upstream
socket is closed instead, so the engine aborts the generation in both cases."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sglfleet.upstream.http1 import Response

# A scope extension of the gateway's HTTP protocol (api/server_limits.py): `watch(callback)`
# calls back once when the client's connection is lost before the response completed, and
# returns the function that cancels the watch.
DISCONNECT_WATCH = "sglfleet.disconnect_watch"
Watch = Callable[[Callable[[], None]], Callable[[], None]]


class ClientLink:
    def __init__(self, receive: Callable[[], Awaitable[dict[str, Any]]], watch: Watch | None = None,
                 waiter: asyncio.Task[Any] | None = None) -> None:
        self.disconnected = False
        self._resp: Response | None = None
        self._waiter = waiter or asyncio.current_task()  # (the request's task: cancelled on a disconnect)
        self._task: asyncio.Future[None] | None = None
        self._unwatch: Callable[[], None] | None = None
        if watch is not None:  # the server tells us: no task per request
            self._unwatch = watch(self._lost)
        else:
            self._task = asyncio.ensure_future(self._watch(receive))

    @classmethod
    def of(cls, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
           waiter: asyncio.Task[Any] | None = None) -> ClientLink:
        ext = scope.get("extensions")
        return cls(receive, ext.get(DISCONNECT_WATCH) if ext else None, waiter)

    async def _watch(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        self._lost()

    def _lost(self) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        if self._resp is not None:
            self._resp.close()  # closes the upstream socket: the engine aborts
        elif self._waiter is not None:
            self._waiter.cancel()  # still waiting for a slot, a load or the response headers

    def stop_cancelling(self) -> None:
        """The waiting is over (the response is open): from now on a disconnect only marks the
        link, until `attach` hands over the response to close."""
        self._waiter = None

    def wait_again(self) -> None:
        """A new wait inside the response (a migration opening a continuation): until the next
        `attach`, a disconnect cancels the current task again."""
        self._resp = None
        self._waiter = asyncio.current_task()

    def attach(self, resp: Response) -> None:
        """The engine's response is open: from now on a disconnect closes it."""
        self._waiter = None
        self._resp = resp
        if self.disconnected:
            resp.close()

    def absorb_cancel(self) -> bool:
        """In an `except CancelledError`: True (and the cancellation undone) when it was ours."""
        task = asyncio.current_task()
        if self.disconnected and task is not None and task.cancelling():
            task.uncancel()
            return True
        return False

    def close(self) -> None:
        self._waiter = None
        if self._task is not None:
            self._task.cancel()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
