"""GET /dashboard and /dashboard/api/stats in-process: auth rule, no secrets, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from sglfleet.api.app import create_app
from sglfleet.config import FleetConfig
from sglfleet.dashboard import routes

API_KEY = "user-key-123"
ADMIN_KEY = "admin-key-456"
WORKER_SECRET = "worker-secret-789"


def _config(**gateway: object) -> FleetConfig:
    return FleetConfig.model_validate({
        "gateway": {"log_dir": "/tmp/sglfleet-dashboard-test-logs", **gateway},
        "models": [{"name": "ext", "engine": "external", "urls": ["http://bob:hunter2@127.0.0.1:9"]},
                   {"name": "ext-keyed", "engine": "external", "api_key": WORKER_SECRET,
                    "urls": ["http://127.0.0.1:10"]}],
    })


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    routes.register(app)
    routes.register(app)  # idempotent
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client


@pytest.fixture
async def keyed() -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(create_app(_config(api_keys=[API_KEY], admin_keys=[ADMIN_KEY]))):
        yield c


@pytest.fixture
async def open_gw() -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(create_app(_config())):
        yield c


async def test_page_and_assets_are_served_with_a_strict_csp(open_gw: httpx.AsyncClient) -> None:
    r = await open_gw.get("/dashboard")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "script-src 'self'" in r.headers["content-security-policy"]
    for asset in ("app.js", "charts.js", "dashboard.css", "favicon.svg"):
        assert asset in r.text
        a = await open_gw.get(f"/dashboard/static/{asset}")
        assert a.status_code == 200 and a.content
    assert "http://" not in r.text and "https://" not in r.text  # no CDN: everything is local


async def test_stats_needs_a_key_when_the_gateway_has_api_keys(keyed: httpx.AsyncClient) -> None:
    assert (await keyed.get("/dashboard/api/stats")).status_code == 401
    assert (await keyed.get("/dashboard/api/stats", headers={"authorization": "Bearer nope"})).status_code == 401
    for key in (API_KEY, ADMIN_KEY):
        r = await keyed.get("/dashboard/api/stats", headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert r.json()["gateway"]["auth"] == {"api_keys": True, "admin_keys": True}
    # the page itself holds no data and stays reachable, so the key can be entered on it
    assert (await keyed.get("/dashboard")).status_code == 200


async def test_stats_is_open_without_api_keys_and_carries_no_secrets(open_gw: httpx.AsyncClient) -> None:
    r = await open_gw.get("/dashboard/api/stats", params={"span_s": 60, "step_s": 3})
    assert r.status_code == 200
    body = r.json()
    assert [m["name"] for m in body["models"]] == ["ext", "ext-keyed"]
    w = body["workers"][0]
    assert w["url"] == "http://127.0.0.1:9" and w["model"] == "ext"
    assert WORKER_SECRET not in r.text and "hunter2" not in r.text and "bob" not in r.text
    assert body["charts"]["span_s"] == 60 and body["charts"]["step_s"] == 3


@pytest.mark.parametrize("params", [{"span_s": "x"}, {"span_s": 5}, {"step_s": 0}, {"span_s": 10, "step_s": 20},
                                    {"span_s": 100000}])
async def test_stats_rejects_bad_parameters_with_a_4xx(open_gw: httpx.AsyncClient, params: dict[str, object]) -> None:
    r = await open_gw.get("/dashboard/api/stats", params=params)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
