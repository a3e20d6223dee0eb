"""Per-model backpressure: at most `limit` requests in flight, a bounded FIFO queue behind it.

Full queue -> 429 at once; waiting longer than the queue timeout -> 503. Cancellation (client
gone) leaves the queue cleanly. `limit=None` means no concurrency cap (the queue is unused).
"""

from __future__ import annotations

import asyncio
from collections import deque

from sglfleet.core.errors import Overloaded, Unavailable


class Limiter:
    def __init__(self, limit: int | None, max_queue: int, queue_timeout_s: float) -> None:
        self.limit = limit
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        if self.limit is None or (self.active < self.limit and not self._waiters):
            self.active += 1
            return
        if len(self._waiters) >= self.max_queue:
            raise Overloaded(
                f"too many requests: {self.active} in flight and {len(self._waiters)} queued "
                f"(limit {self.limit}, queue {self.max_queue})", retry_after_s=1)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.queue_timeout_s)
        except TimeoutError:
            if not fut.done():
                self._waiters.remove(fut)
                raise Unavailable(f"queued for {self.queue_timeout_s:.0f}s without a free slot",
                                  retry_after_s=5) from None
            # granted at the last moment: keep it
        except asyncio.CancelledError:
            if fut.done():
                self._release_slot()  # we were handed a slot but will not use it
            else:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        if self.limit is None:
            self.active -= 1
            return
        self._release_slot()

    def _release_slot(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the next waiter
                return
        self.active -= 1
