"""What the translated chat APIs (Anthropic Messages, OpenAI Responses) share on their way to
`openai.forward`: the API key, model resolution with task routes, and the chat dispatch.

Same steps as /v1/chat/completions (`openai.generate`): a virtual model (`auto`) is classified
on the latest user turn and its route's model and defaults apply; `x-sglfleet-route*` headers
say what was chosen; refusals before a response are counted and logged like the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from sglfleet.api.body import parse_json_object, read_body
from sglfleet.api.openai import forward, record_rejection
from sglfleet.api.serves import require_generation
from sglfleet.config import TaskRoute
from sglfleet.core.auth import check_api_key
from sglfleet.core.errors import ClientGone, GatewayError
from sglfleet.fleet import Fleet
from sglfleet.routing.policies import RouteContext
from sglfleet.routing.pool import ModelPool
from sglfleet.routing.task_routes import apply_route, last_user_text
from sglfleet.routing.text import chat_text


@dataclass(slots=True)
class Target:
    pool: ModelPool
    route: TaskRoute | None = None
    headers: dict[str, str] = field(default_factory=dict)


def authorize(request: Request, fleet: Fleet, *, x_api_key: bool = False) -> None:
    """`Authorization: Bearer <key>`, or Anthropic's `x-api-key: <key>`, against the same keys."""
    gw = fleet.cfg.gateway
    authorization = request.headers.get("authorization")
    if x_api_key and not authorization and request.headers.get("x-api-key"):
        authorization = "Bearer " + request.headers["x-api-key"]
    check_api_key(authorization, gw.api_keys, gw.admin_keys)


async def read_json(request: Request, fleet: Fleet) -> dict[str, Any]:
    return parse_json_object(await read_body(request, fleet.cfg.gateway.max_body_bytes))


async def resolve(fleet: Fleet, client_model: str, messages: list[dict[str, Any]], route_name: str) -> Target:
    """The pool for a client's model name, classifying task routes (`auto`) first."""
    router = fleet.virtual.get(client_model.casefold())
    if router is None:
        target = Target(fleet.registry.resolve(client_model))
    else:
        c = await router.classify(last_user_text(messages))
        fleet.metrics.route_decisions.labels(router.vm.name, c.route.name, c.route.target).inc()
        target = Target(fleet.registry.resolve(c.route.target), c.route,
                        {"x-sglfleet-route": c.route.name, "x-sglfleet-route-by": c.method})
        target.headers["x-sglfleet-model"] = target.pool.name
    require_generation(fleet, target.pool, client_model, route_name)
    return target


async def dispatch_chat(request: Request, fleet: Fleet, target: Target, body: dict[str, Any], endpoint: str,
                        t0: float) -> Any:
    """Send an OpenAI chat body through the one dispatch path; returns the relay."""
    if target.route is not None:
        apply_route(body, target.route)
    ctx = RouteContext(text=chat_text(body["messages"]),
                       routing_key=request.headers.get(fleet.cfg.gateway.routing_key_header))
    return await forward(request, fleet, target.pool, body, "/v1/chat/completions", endpoint, ctx, t0,
                         dict(target.headers))


def rejected(fleet: Fleet, request: Request, model: str, endpoint: str, exc: GatewayError, dur_s: float) -> None:
    if not isinstance(exc, ClientGone):  # forward records its own 499s
        record_rejection(fleet, request, model, endpoint, exc, dur_s)
