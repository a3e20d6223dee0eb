"""Graceful shutdown: on SIGTERM stop admitting, let in-flight requests finish within the
grace, then end what is left cleanly.

1. `fleet.draining` goes up: `/ready` answers 503 (load balancers and Kubernetes stop sending)
   and new generation requests get 503 with Retry-After.
2. In-flight exchanges run to their end for up to `gateway.shutdown_grace_s`.
3. The rest are aborted: a stream gets an error event and `[DONE]`, a request still waiting
   (queue, model load, first byte) gets 503. Then the server stops.
A second signal skips the wait.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sglfleet.fleet import Fleet

log = logging.getLogger("sglfleet")

REASON = "the gateway is shutting down"


async def drain(fleet: Fleet, grace_s: float, *, poll_s: float = 0.1, settle_s: float = 3.0) -> int:
    """Run steps 1-3; returns how many exchanges had to be aborted."""
    fleet.draining = True
    live = len(fleet.exchanges)
    if live:
        log.info("shutting down: waiting up to %gs for %d request(s) in flight", grace_s, live)
    deadline = time.monotonic() + grace_s
    while fleet.exchanges and time.monotonic() < deadline:
        await asyncio.sleep(poll_s)
    left = list(fleet.exchanges)
    for exchange in left:
        exchange.abort(REASON)
    if left:
        log.warning("shutting down: grace of %gs over, ended %d request(s) with an error", grace_s, len(left))
    deadline = time.monotonic() + settle_s
    while fleet.exchanges and time.monotonic() < deadline:  # let the relays send their last bytes
        await asyncio.sleep(poll_s)
    return len(left)
