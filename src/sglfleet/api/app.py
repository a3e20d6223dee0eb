"""The gateway application: routes, middleware, error handling, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from sglfleet import __version__
from sglfleet.api import admin, admin_memory, anthropic, embeddings, errors_handler, ollama, openai, openapi, responses
from sglfleet.api.middleware import RequestIdMiddleware, assign_request_id, send_with_request_id
from sglfleet.config import FleetConfig
from sglfleet.dashboard import routes as dashboard_routes
from sglfleet.fleet import Fleet


async def health(request: Request) -> Response:
    return openai.json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    fleet = openai.fleet_of(request)
    summary = fleet.ready_summary()
    if fleet.draining:
        summary = {**summary, "ready": False, "draining": True}
    if summary["ready"]:
        return openai.json_response(summary)
    return openai.json_response(summary, 503, headers={"retry-after": "5"})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(openai.fleet_of(request).metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)


class GatewayApp:
    """The outermost ASGI app. The two generation routes are served directly (request id,
    handler, the single error mapping) instead of through FastAPI's middleware and router
    stack, which cost ~20% of the gateway's CPU per request in profiles; every other route,
    the lifespan and all attributes (`state`, `routes`, `include_router`, ...) belong to the
    FastAPI app."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.fleet = app.state.fleet
        self._hot = {"/v1/chat/completions": openai.chat_completions, "/v1/completions": openai.completions}
        self._asgi = RequestIdMiddleware(app)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = self._hot.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self._asgi(scope, receive, send)
            return
        rid = assign_request_id(scope)
        scope["app"] = self.app
        scope[openai.FLEET] = self.fleet
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:  # noqa: BLE001 - mapped exactly like the FastAPI routes' errors
            response = await errors_handler.to_response(request, exc)
        # the relays put the id in their head themselves: no wrapper on every body piece
        await response(scope, receive, send if getattr(response, "sets_request_id", False)
                       else send_with_request_id(send, rid))


def create_app(cfg: FleetConfig, *, fleet: Fleet | None = None, wait_ready: bool = True) -> Any:
    fleet = fleet or Fleet(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await fleet.start(wait=wait_ready)
        try:
            yield {}
        finally:
            await fleet.stop()

    app = FastAPI(title="sglfleet", version=__version__, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    app.state.fleet = fleet
    errors_handler.install(app)
    # the hot routes are also registered here for the OpenAPI listing and 405 on other methods
    app.add_route("/v1/chat/completions", openai.chat_completions, methods=["POST"])
    app.add_route("/v1/completions", openai.completions, methods=["POST"])
    app.add_route("/v1/models", openai.list_models, methods=["GET"])
    app.add_route("/v1/models/{model_id:path}", openai.retrieve_model, methods=["GET"])
    embeddings.register(app)
    anthropic.register(app)
    responses.register(app)
    app.add_route("/health", health, methods=["GET"])
    app.add_route("/ready", ready, methods=["GET"])
    app.add_route("/metrics", metrics, methods=["GET"])
    app.include_router(admin.router)
    app.include_router(admin_memory.router)
    dashboard_routes.register(app)
    ollama.register(app)  # last: it adds GET / and the /api/* catch-all
    openapi.install(app)  # /openapi.json documents every public route
    return GatewayApp(app)
