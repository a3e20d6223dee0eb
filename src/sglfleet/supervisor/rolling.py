"""Rolling restart: the replicas of a model, one at a time: drain, stop, start, ready, next.

While a replica drains, the router sends new requests to the others; its in-flight requests
finish (bounded by `drain_timeout_s`; a stream still running then is cut, and mid-stream
migration carries it on). With one replica, requests that arrive meanwhile are held until the
new process is ready (api/holds.py). A replica that does not come back stops the restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sglfleet.supervisor.model import ModelSupervisor

log = logging.getLogger("sglfleet.supervisor")


@dataclass(slots=True)
class RestartReport:
    model: str
    ok: bool = True
    replicas: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ok": self.ok, "restarted": self.replicas, "error": self.error or None}


async def rolling_restart(sup: ModelSupervisor, *, drain_timeout_s: float = 60.0) -> RestartReport:
    report = RestartReport(sup.name)
    timeout = sup.pool.cfg.restart.startup_timeout_s
    async with sup.restart_lock:
        for r in sup.replicas:
            w, t0 = r.worker, time.monotonic()
            w.draining = True
            try:
                deadline = t0 + drain_timeout_s
                while w.inflight and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                left = w.inflight
                drained = time.monotonic()
                await r.stop("rolling restart")
            finally:
                w.draining = False
            r.start()
            ready = await r.wait_ready(timeout)
            entry = {"replica": r.replica, "drain_s": round(drained - t0, 2), "cut_requests": left,
                     "restart_s": round(time.monotonic() - drained, 2), "ready": ready}
            report.replicas.append(entry)
            log.info("%s/%d: rolling restart: %s", sup.name, r.replica, entry)
            if not ready:
                report.ok = False
                report.error = f"replica {r.replica} not ready after {timeout:g}s ({r.state.value})"
                break
    return report
