"""The dashboard's JSON snapshot of the fleet: what the page renders on every poll.

Built from live objects only (no I/O but the cached memory probe), so one poll costs a few
dictionary walks. It never carries secrets: no API keys, no worker credentials (userinfo is
stripped from URLs), no engine argv or log paths.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sglfleet import __version__
from sglfleet.core.worker import Worker
from sglfleet.dashboard.memory import MemoryProbe
from sglfleet.fleet import Fleet
from sglfleet.routing.pool import ModelPool
from sglfleet.supervisor.model import ModelSupervisor

MAX_TEXT = 300  # longest reason / error string sent to the page


def _clip(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def public_url(url: str) -> str:
    """`url` without user:password@ (an external worker's URL may carry credentials)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _worker(w: Worker, pool: ModelPool) -> dict[str, Any]:
    return {
        "id": w.id, "model": w.model, "url": public_url(w.url), "role": w.role, "managed": w.managed,
        "ready": w.ready, "healthy": w.healthy, "draining": w.draining, "eligible": w.eligible,
        "inflight": w.inflight, "queued": pool.limiter.queued, "processed": w.processed,
        "breaker": w.breaker.state.name.lower(), "last_error": _clip(w.last_error),
        "last_error_at": w.last_error_at or None,
    }


def _replicas(sup: ModelSupervisor, now: float) -> list[dict[str, Any]]:
    return [
        {
            "replica": r.replica, "state": r.state.value, "reason": _clip(r.lifecycle.reason),
            "worker": r.worker.id, "phase": r.progress.phase, "phase_detail": _clip(r.progress.detail),
            "elapsed_s": round(now - r.progress.started_at, 1) if r.progress.started_at else None,
            "restarts": r.crashes.total, "last_crash": _clip(r.crashes.last_reason),
            "startup": sup.startup_figures(r),
        }
        for r in sup.replicas
    ]


def _model(pool: ModelPool, sup: ModelSupervisor | None, memory: MemoryProbe, now: float) -> dict[str, Any]:
    cfg = pool.cfg
    entry: dict[str, Any] = {
        "name": pool.name, "engine": cfg.engine, "managed": sup is not None, "state": pool.status,
        "failure": _clip(pool.failure), "priority": cfg.priority, "policy": cfg.policy,
        "aliases": list(cfg.aliases),
        "workers": {"total": len(pool.workers), "eligible": sum(1 for w in pool.workers if w.eligible)},
        "queue": {"active": pool.limiter.active, "queued": pool.limiter.queued, "limit": pool.limiter.limit},
        "replicas": [], "restarts": 0,
        "memory": {"estimated_bytes": cfg.memory_bytes, "measured_bytes": None},
    }
    if sup is not None:
        entry["replicas"] = _replicas(sup, now)
        entry["restarts"] = sum(r.crashes.total for r in sup.replicas)
        entry["memory"] = {"estimated_bytes": cfg.memory_bytes or memory.estimated_bytes(sup),
                           "measured_bytes": memory.measured_bytes(sup)}
    return entry


def build_snapshot(fleet: Fleet, memory: MemoryProbe, *, span_s: int, step_s: int,
                   auth: dict[str, bool], now: float | None = None) -> dict[str, Any]:
    """The whole page's data: gateway facts, one entry per model and worker, chart series."""
    now_f = time.time() if now is None else now
    pools = list(fleet.registry)
    names = [p.name for p in pools] + [m for m in fleet.stats.models() if fleet.registry.get(m) is None]
    return {
        "now": now_f,
        "gateway": {"version": __version__, "uptime_s": round(now_f - fleet.started_at, 1), "auth": auth},
        "models": [_model(p, fleet.supervisors.get(p.name), memory, now_f) for p in pools],
        "workers": [_worker(w, p) for p in pools for w in p.workers],
        "charts": {"span_s": span_s, "step_s": step_s,
                   "series": {n: fleet.stats.chart(n, span_s=span_s, step_s=step_s, now=now_f).as_dict()
                              for n in names}},
    }
