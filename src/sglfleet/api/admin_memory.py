"""Admin API for the memory orchestrator: `GET /admin/memory` (budget, limits, used, PSI, and
each managed model's estimated / measured footprint). Include with
`app.include_router(admin_memory.router)`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from sglfleet.api.admin import require_admin
from sglfleet.api.openai import fleet_of, json_response
from sglfleet.core.errors import RouteNotFound
from sglfleet.supervisor.orchestrator import MemoryOrchestrator

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


def orchestrator_of(request: Request) -> MemoryOrchestrator:
    fleet = fleet_of(request)
    orch = getattr(fleet, "memory", None)
    if orch is None:  # a fleet that attaches the orchestrator to its supervisors only
        orch = next((s.orchestrator for s in fleet.supervisors.values() if s.orchestrator), None)
    if orch is None:
        raise RouteNotFound("this gateway runs no memory orchestrator (no managed models)")
    return orch


@router.get("/memory")
async def memory(request: Request) -> Any:
    return json_response(orchestrator_of(request).snapshot())
