"""The heartbeat: is the engine process answering at all, whatever its traffic?

A cheap GET on a path the engine answers from its event loop without queueing behind
generation (the engine kind's `heartbeat_path`; llama-cpp-python's /v1/models waits for the
running generation, its 404 for /health does not). Any answer below 500 is a beat. A worker
that misses `misses` beats in a row is *stalled*: policies never pick it, and its attempts that
have sent the client nothing yet are expired, so they are retried on another worker within
seconds instead of hanging for minutes (a SIGSTOPped or deadlocked engine still accepts TCP
connections); a refused connection (nothing listens) stalls it at once. One answered beat
re-admits it.

The deep checks (a 1-token generation) stay with the health checker and the supervisor.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from sglfleet.config import HeartbeatConfig
from sglfleet.core.worker import Worker
from sglfleet.upstream.client import upstream_headers

log = logging.getLogger("sglfleet.health")


def mark_stalled(worker: Worker, reason: str) -> None:
    if worker.stalled:
        return
    worker.stalled = True
    worker.note_error(f"stalled: {reason}")
    log.warning("worker %s (%s, model %s) is stalled: %s; its waiting requests go elsewhere",
                worker.id, worker.url, worker.model, reason)
    for attempt in list(worker.attempts):
        if attempt.first_byte_at is None:  # nothing sent to the client yet: retry elsewhere
            attempt.expire(f"worker stalled ({reason})")


def mark_alive(worker: Worker) -> None:
    if worker.stalled:
        worker.stalled = False
        worker.breaker.half_open_now()  # its deadline failures opened it; probes confirm it is back
        log.info("worker %s (%s, model %s) answers again", worker.id, worker.url, worker.model)


class Heartbeat:
    def __init__(self, session: aiohttp.ClientSession, worker: Worker, path: str, cfg: HeartbeatConfig) -> None:
        self.session = session
        self.worker = worker
        self.path = path
        self.cfg = cfg
        self.misses = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat-{self.worker.id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def beat(self) -> bool | None:
        """True: it answered; False: no answer in time; None: nothing listens (refused)."""
        w = self.worker
        try:
            async with self.session.get(w.url + self.path, headers=upstream_headers(w.auth, "sglfleet-heartbeat"),
                                        timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s)) as r:
                return r.status < 500
        except aiohttp.ClientConnectorError:
            return None
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    async def check_once(self) -> None:
        w = self.worker
        if not w.ready:  # starting or stopped: the supervisor owns it
            self.misses = 0
            mark_alive(w)
            return
        answered = await self.beat()
        if answered:
            self.misses = 0
            mark_alive(w)
            return
        if answered is None:  # a refused connection needs no second look: nothing is there
            mark_stalled(w, "connection refused")
            return
        self.misses += 1
        if self.misses >= self.cfg.misses:
            mark_stalled(w, f"no heartbeat answer {self.misses}x within {self.cfg.timeout_s:g}s")

    async def _loop(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self.cfg.interval_s)
