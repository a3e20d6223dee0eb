"""Admin API (admin key): workers, models, crash breakers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from sglfleet.api.openai import fleet_of, json_response
from sglfleet.core.auth import check_admin_key
from sglfleet.core.errors import BadRequest, ModelNotFound, RouteNotFound
from sglfleet.fleet import Fleet


def require_admin(request: Request) -> Fleet:
    fleet = fleet_of(request)
    gw = fleet.cfg.gateway
    check_admin_key(request.headers.get("authorization"), gw.admin_keys, gw.api_keys)
    return fleet


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


class NewWorker(BaseModel):
    model: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://[^/\s]+")
    api_key: str | None = None


@router.get("/workers")
async def list_workers(request: Request) -> Any:
    fleet = fleet_of(request)
    return json_response({"workers": [w.to_dict() for p in fleet.registry for w in p.workers]})


@router.post("/workers", status_code=201)
async def add_worker(body: NewWorker, request: Request) -> Any:
    fleet = fleet_of(request)
    pool = fleet.registry.resolve(body.model)
    if pool.cfg.managed:
        raise BadRequest(f"model {pool.name!r} is managed by sglfleet; add replicas in the fleet file")
    w = fleet.add_external_worker(pool, body.url.rstrip("/"), body.api_key or pool.cfg.api_key)
    return json_response(w.to_dict(), 201)


@router.delete("/workers/{worker_id}")
async def delete_worker(worker_id: str, request: Request) -> Any:
    w = await fleet_of(request).remove_worker(worker_id)
    if w is None:
        raise RouteNotFound(f"no external worker {worker_id!r}")
    return json_response({"removed": w.to_dict()})


@router.post("/workers/{worker_id}/drain")
async def drain_worker(worker_id: str, request: Request, undo: bool = False) -> Any:
    w = fleet_of(request).find_worker(worker_id)
    if w is None:
        raise RouteNotFound(f"no worker {worker_id!r}")
    w.draining = not undo
    return json_response(w.to_dict())


def _model_entry(fleet: Fleet, name: str) -> dict[str, Any]:
    pool = fleet.registry.get(name)
    assert pool is not None
    sup = fleet.supervisors.get(name)
    cfg = pool.cfg
    entry: dict[str, Any] = {
        "name": name, "engine": cfg.engine, "aliases": list(cfg.aliases), "state": pool.status,
        "failure": pool.failure, "priority": cfg.priority, "keep_alive_s": cfg.keep_alive_s,
        "policy": cfg.policy, "workers": [w.to_dict() for w in pool.workers],
        "queue": {"active": pool.limiter.active, "queued": pool.limiter.queued,
                  "limit": pool.limiter.limit},
    }
    if sup is not None:
        entry.update(sup.snapshot())
        entry["last_start"] = sup.last_start or None
        entry["restarts"] = sum(r.crashes.total for r in sup.replicas)
    return entry


def _supervisor(fleet: Fleet, name: str) -> Any:
    pool = fleet.registry.resolve(name)
    sup = fleet.supervisors.get(pool.name)
    if sup is None:
        raise ModelNotFound(f"model {pool.name!r} is not managed by sglfleet (external workers)")
    return sup


@router.get("/models")
async def list_models(request: Request) -> Any:
    fleet = fleet_of(request)
    return json_response({"models": [_model_entry(fleet, p.name) for p in fleet.registry]})


@router.post("/models/{name}/load")
async def load_model(name: str, request: Request) -> Any:
    fleet = fleet_of(request)
    sup = _supervisor(fleet, name)
    await sup.pool.ensure_ready()
    return json_response(_model_entry(fleet, sup.pool.name))


@router.post("/models/{name}/unload")
async def unload_model(name: str, request: Request) -> Any:
    fleet = fleet_of(request)
    sup = _supervisor(fleet, name)
    await sup.stop("admin unload")
    return json_response(_model_entry(fleet, sup.pool.name))


@router.post("/models/{name}/restart")
async def restart_model(name: str, request: Request, drain_timeout_s: float = 60.0) -> Any:
    """Rolling restart: one replica at a time (drain, stop, start, ready); answers when done."""
    from sglfleet.supervisor.rolling import rolling_restart

    fleet = fleet_of(request)
    sup = _supervisor(fleet, name)
    if sup.restart_lock.locked():
        raise BadRequest(f"model {sup.name!r} is already restarting")
    report = await rolling_restart(sup, drain_timeout_s=max(0.0, min(drain_timeout_s, 3600.0)))
    fleet.metrics.restarts.labels(sup.name, "done" if report.ok else "failed").inc()
    return json_response({**report.to_dict(), **_model_entry(fleet, sup.pool.name)}, 200 if report.ok else 500)


@router.get("/crashes")
async def crashes(request: Request) -> Any:
    fleet = fleet_of(request)
    out = []
    for name, sup in fleet.supervisors.items():
        for r in sup.replicas:
            if r.crashes.total:
                out.append({"model": name, "replica": r.replica, "state": r.state.value,
                            "crashes": r.crashes.total, "in_window": len(r.crashes.crashes),
                            "last_reason": r.crashes.last_reason, "log_tail": r.log_tail(5)})
    return json_response({"crashes": out})


@router.delete("/crashes/{name}")
async def reset_crashes(name: str, request: Request) -> Any:
    fleet = fleet_of(request)
    sup = _supervisor(fleet, name)
    sup.reset()
    return json_response(_model_entry(fleet, sup.pool.name))
