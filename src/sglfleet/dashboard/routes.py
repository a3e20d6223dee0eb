"""HTTP routes of the dashboard; `register(app)` adds them to the gateway app.

    GET /dashboard                 the page (static HTML; holds no data itself)
    GET /dashboard/static/{file}   its CSS, JS and icon, from the package (works offline)
    GET /dashboard/api/stats       JSON snapshot polled by the page every ~1.5 s

Who may read the snapshot: the same callers as `/v1/*`. With no `gateway.api_keys` it is
open (like `/metrics`); with API keys it needs a bearer key, an API key or an admin key.
The snapshot carries no secrets (see snapshot.py), and what it shows beyond `/metrics` is
state and error text an API user could also meet in error responses. Admin actions on the
page call the existing `/admin/*` routes, which keep their admin-key check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from sglfleet.core.auth import check_api_key
from sglfleet.core.errors import BadRequest
from sglfleet.dashboard.memory import MemoryProbe
from sglfleet.dashboard.snapshot import build_snapshot
from sglfleet.fleet import Fleet
from sglfleet.telemetry import DEFAULT_CHART_SPAN_S, DEFAULT_CHART_STEP_S, WINDOW_S

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/dashboard"

# The page loads only its own files and talks only to its own origin.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class DashboardState:
    """Per-app dashboard state, kept on `app.state.dashboard` (never module-global)."""

    memory: MemoryProbe


def _fleet(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer, got {raw!r}", param=name) from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter {name!r} must be between {lo} and {hi}, got {value}", param=name)
    return value


async def page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


async def stats(request: Request) -> Response:
    fleet = _fleet(request)
    gw = fleet.cfg.gateway
    check_api_key(request.headers.get("authorization"), gw.api_keys, gw.admin_keys)
    span_s = _int_param(request, "span_s", DEFAULT_CHART_SPAN_S, 10, WINDOW_S)
    step_s = _int_param(request, "step_s", DEFAULT_CHART_STEP_S, 1, 60)
    if step_s > span_s:
        raise BadRequest("step_s must not exceed span_s", param="step_s")
    state: DashboardState = request.app.state.dashboard
    auth = {"api_keys": bool(gw.api_keys), "admin_keys": bool(gw.admin_keys)}
    body = build_snapshot(fleet, state.memory, span_s=span_s, step_s=step_s, auth=auth)
    return Response(orjson.dumps(body), media_type="application/json",
                    headers={"cache-control": "no-store"})


def register(app: FastAPI) -> None:
    """Add the dashboard's routes and static files to the gateway app (idempotent)."""
    if getattr(app.state, "dashboard", None) is not None:
        return
    app.state.dashboard = DashboardState(memory=MemoryProbe())
    app.add_route(PREFIX, page, methods=["GET"])
    app.add_route(PREFIX + "/", page, methods=["GET"])
    app.add_route(PREFIX + "/api/stats", stats, methods=["GET"])
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
