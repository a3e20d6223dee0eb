"""Probing workers: readiness ("serves the expected model and generates a token") and the
periodic health checker for workers sglfleet does not supervise."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
import orjson

from sglfleet.config import HealthConfig
from sglfleet.core.redact import redact_text
from sglfleet.core.worker import Worker
from sglfleet.engines.base import Probe
from sglfleet.upstream.client import upstream_headers

log = logging.getLogger("sglfleet.health")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str = ""
    model_ids: tuple[str, ...] = ()


async def probe_worker(session: aiohttp.ClientSession, url: str, probe: Probe, *, model_id: str,
                       auth: str | None, timeout_s: float, generate: bool | None = None) -> ProbeResult:
    """GET the health path or /v1/models (checking the model id is served), then optionally a
    1-token completion. Any exception is a failed probe with a readable reason."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    headers = upstream_headers(auth, "sglfleet-probe")
    ids: tuple[str, ...] = ()
    try:
        if probe.health_path:
            async with session.get(url + probe.health_path, timeout=timeout, headers=headers) as r:
                if r.status != 200:
                    return ProbeResult(False, f"{probe.health_path} answered HTTP {r.status}")
        if probe.models_path:
            async with session.get(url + probe.models_path, timeout=timeout, headers=headers) as r:
                if r.status != 200:
                    return ProbeResult(False, f"{probe.models_path} answered HTTP {r.status}")
                data = orjson.loads(await r.read())
            ids = tuple(str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict))
            if model_id not in ids:
                return ProbeResult(False, f"serves {list(ids)}, expected {model_id!r}", ids)
        if probe.generate if generate is None else generate:
            body = orjson.dumps({"model": model_id, "prompt": "ping", "max_tokens": 1, "temperature": 0})
            async with session.post(url + "/v1/completions", data=body, timeout=timeout, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    return ProbeResult(False, f"1-token generation answered HTTP {r.status}", ids)
    except TimeoutError:
        return ProbeResult(False, f"no answer within {timeout_s:g}s", ids)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return ProbeResult(False, f"{exc.__class__.__name__}: {redact_text(str(exc))}", ids)
    return ProbeResult(True, "ok", ids)


class HealthChecker:
    """Background probe loop for one external worker (failure/success thresholds)."""

    def __init__(self, session: aiohttp.ClientSession, worker: Worker, probe: Probe, cfg: HealthConfig,
                 model_id: str) -> None:
        self.session = session
        self.worker = worker
        self.probe = probe
        self.cfg = cfg
        self.model_id = model_id
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"health-{self.worker.id}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def check_once(self) -> ProbeResult:
        w = self.worker
        res = await probe_worker(self.session, w.url, self.probe, model_id=self.model_id,
                                 auth=w.auth, timeout_s=self.cfg.timeout_s)
        if res.ok:
            w.consecutive_health_failures = 0
            w.consecutive_health_successes += 1
            if not w.healthy and w.consecutive_health_successes >= self.cfg.success_threshold:
                w.healthy = True
                log.info("worker %s (%s) is healthy again", w.id, w.url)
        else:
            w.consecutive_health_successes = 0
            w.consecutive_health_failures += 1
            w.note_error(f"health check: {res.detail}")
            if w.healthy and w.consecutive_health_failures >= self.cfg.failure_threshold:
                w.healthy = False
                log.warning("worker %s (%s) is unhealthy: %s", w.id, w.url, res.detail)
        return res

    async def _loop(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self.cfg.interval_s)
