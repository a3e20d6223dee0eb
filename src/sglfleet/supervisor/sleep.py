"""SGLang warm sleep: release an idle engine's GPU memory without ending its process, and
resume it on the next request.

SGLang's HTTP server (http_server.py) has `POST /release_memory_occupation` and
`POST /resume_memory_occupation`, body `{"tags": [...]}` (optional; "weights", "kv_cache";
none = all), answering 200 on success and an error body otherwise. The engine must have been
started with `--enable-memory-saver`, and with `--enable-weights-cpu-backup` for the weights
to come back on resume without a reload (SGLang >= 0.5.3); `engines/managed_gpu.py` adds both
flags for models with `evict: sleep`.

A release is READY -> SLEEPING (the worker leaves routing first, and must be idle); a wake is
SLEEPING -> STARTING (phase "waking") -> READY once the engine answers its readiness probe
again. A wake that fails kills the process: the replica's run loop then restarts it cold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import aiohttp

from sglfleet.supervisor.states import State
from sglfleet.upstream.client import upstream_headers
from sglfleet.upstream.health import probe_worker

if TYPE_CHECKING:
    from sglfleet.supervisor.managed import ManagedWorker

log = logging.getLogger("sglfleet.supervisor")

RELEASE = "/release_memory_occupation"
RESUME = "/resume_memory_occupation"
TAGS = ["weights", "kv_cache"]


async def _post(r: ManagedWorker, path: str, timeout_s: float) -> str | None:
    """None on success, else why not."""
    w = r.worker
    try:
        async with r.session.post(w.url + path, json={"tags": TAGS}, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                  headers=upstream_headers(w.auth, "sglfleet-sleep")) as resp:
            if resp.status == 200:
                return None
            return f"{path} answered HTTP {resp.status}: {(await resp.text())[:200]}"
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return f"{path} failed: {exc.__class__.__name__}"


async def release(r: ManagedWorker, reason: str) -> bool:
    """READY -> SLEEPING; False (and the replica untouched) when the engine refuses."""
    if r.state is not State.READY:
        return False
    w = r.worker
    w.draining = True  # no new work while the engine lets go of its memory
    try:
        for _ in range(100):  # an eviction only picks idle models; a request may still be finishing
            if not w.inflight:
                break
            await asyncio.sleep(0.05)
        failed = await _post(r, RELEASE, r.policy.liveness_timeout_s)
        if failed:
            log.warning("%s: cannot sleep: %s", r.lifecycle.name, failed)
            return False
        r.lifecycle.transition(State.SLEEPING, reason)  # READY -> SLEEPING
        r.progress.phase, r.progress.detail = "sleeping", reason
        return True
    finally:
        w.draining = False


async def wake(r: ManagedWorker) -> None:
    """SLEEPING -> STARTING (waking) -> READY; on failure the process is killed (cold restart)."""
    if r.state is not State.SLEEPING:
        return
    r.lifecycle.transition(State.STARTING, "waking")  # SLEEPING -> STARTING
    r.progress.phase, r.progress.started_at, r.progress.detail = "waking", time.time(), ""
    r.progress.fraction = None
    failed = await _post(r, RESUME, r.policy.startup_timeout_s)
    deadline = time.monotonic() + r.policy.startup_timeout_s
    while not failed:
        res = await probe_worker(r.session, r.worker.url, r.engine.probe, model_id=r.model.served_model,
                                 auth=r.worker.auth, timeout_s=r.policy.liveness_timeout_s, generate=False)
        if res.ok:
            r.lifecycle.transition(State.READY, f"awake in {time.time() - r.progress.started_at:.1f}s")
            r.progress.phase = "ready"
            return
        if time.monotonic() > deadline:
            failed = f"not ready after resume: {res.detail}"
        await asyncio.sleep(0.1)
    log.warning("%s: wake failed (%s); restarting it", r.lifecycle.name, failed)
    r.kill_now()
