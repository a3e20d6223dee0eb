"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions.

The two generation routes are plain Starlette endpoints returning raw ASGI relays (FastAPI
would try to serialise them): validate -> resolve model -> admit (limiter) -> dispatch ->
relay bytes -> record metrics and the access line once.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sglfleet.api import adapt, holds, migration
from sglfleet.api.access_log import access
from sglfleet.api.body import header, parse_json_object, read_body, validate
from sglfleet.api.fanout import forward_all
from sglfleet.api.link import ClientLink
from sglfleet.api.reasoning import mirror_body, mirror_sse
from sglfleet.api.relay import BodyRelay, Outcome, StreamRelay
from sglfleet.api.schemas import ChatCompletionRequest, CompletionRequest
from sglfleet.api.serves import require_generation
from sglfleet.core.auth import check_api_key
from sglfleet.core.errors import ClientGone, GatewayError, Unavailable, UploadAborted
from sglfleet.core.exchange import Exchange, Verdict
from sglfleet.fleet import Fleet
from sglfleet.routing.pd import PDPool
from sglfleet.routing.policies import RouteContext
from sglfleet.routing.pool import ModelPool, Pool
from sglfleet.routing.task_routes import apply_route, last_user_text
from sglfleet.routing.text import chat_text, prompt_text


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")


FLEET = "sglfleet.fleet"  # scope key: set by GatewayApp on the generation routes


def fleet_of(request: Request) -> Fleet:
    fleet = request.scope.get(FLEET)
    return fleet if fleet is not None else request.app.state.fleet  # type: ignore[no-any-return]


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or "-"


async def list_models(request: Request) -> Response:
    fleet = fleet_of(request)
    check_api_key(request.headers.get("authorization"), fleet.cfg.gateway.api_keys, fleet.cfg.gateway.admin_keys)
    data = [model_card(pool, fleet.started_at) for pool in fleet.registry]
    data += [virtual_card(r.vm.name, [x.name for x in r.vm.routes], fleet.started_at) for r in fleet.virtual.values()]
    return json_response({"object": "list", "data": data})


async def retrieve_model(request: Request) -> Response:
    """GET /v1/models/{id} (the openai SDK's `models.retrieve`): a model, alias or virtual model."""
    fleet = fleet_of(request)
    check_api_key(request.headers.get("authorization"), fleet.cfg.gateway.api_keys, fleet.cfg.gateway.admin_keys)
    name = request.path_params["model_id"]
    router = fleet.virtual.get(name.casefold())
    if router is not None:
        return json_response(virtual_card(router.vm.name, [x.name for x in router.vm.routes], fleet.started_at))
    return json_response(model_card(fleet.registry.resolve(name), fleet.started_at))


def virtual_card(name: str, routes: list[str], created: float) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(created), "owned_by": "sglfleet",
            "root": "virtual", "parent": None, "routes": routes}


def model_card(pool: Pool, created: float) -> dict[str, Any]:
    cfg = pool.cfg
    return {
        "id": pool.name, "object": "model", "created": int(created), "owned_by": "sglfleet",
        "root": cfg.served_model if not cfg.managed else cfg.resolved_model_path,
        "parent": None,
        "max_model_len": cfg.capabilities.context_window or cfg.n_ctx,
        "aliases": list(cfg.aliases),
        "state": pool.status,
        "capabilities": cfg.capabilities.model_dump(),
    }


async def chat_completions(request: Request) -> Any:
    return await generate(request, "chat")


async def completions(request: Request) -> Any:
    return await generate(request, "completions")


async def generate(request: Request, endpoint: str) -> Any:
    t0 = time.perf_counter()
    fleet = fleet_of(request)
    gw = fleet.cfg.gateway
    model = "-"
    try:
        check_api_key(header(request, "authorization"), gw.api_keys, gw.admin_keys)
        data = parse_json_object(await read_body(request, gw.max_body_bytes, gw.limits.body_timeout_s))
        chat = endpoint == "chat"
        validate(ChatCompletionRequest if chat else CompletionRequest, data)
        headers: dict[str, str] = {}
        router = fleet.virtual.get(data["model"].casefold())
        if router is not None:  # task routes: `model: auto` -> classify -> the route's model
            c = await router.classify(last_user_text(data["messages"]) if chat else prompt_text(data["prompt"]))
            apply_route(data, c.route)
            headers["x-sglfleet-route"] = c.route.name
            headers["x-sglfleet-route-by"] = c.method  # rules | model | fallback | default
            fleet.metrics.route_decisions.labels(router.vm.name, c.route.name, c.route.target).inc()
        pool = fleet.registry.resolve(data["model"])
        model = pool.name
        require_generation(fleet, pool, data["model"], "/v1/chat/completions" if chat else "/v1/completions")
        if router is not None:
            headers["x-sglfleet-model"] = pool.name
        text = chat_text(data["messages"]) if chat else prompt_text(data["prompt"])
        ctx = RouteContext(text=text, routing_key=header(request, gw.routing_key_header), body=data)
        path = "/v1/chat/completions" if chat else "/v1/completions"
        return await forward(request, fleet, pool, data, path, endpoint, ctx, t0, headers, comments=True)
    except GatewayError as exc:
        if not isinstance(exc, ClientGone) or isinstance(exc, UploadAborted):  # (forward records its own 499s)
            record_rejection(fleet, request, model, endpoint, exc, time.perf_counter() - t0)
        raise


def record_rejection(fleet: Fleet, request: Request, model: str, endpoint: str, exc: GatewayError,
                     dur_s: float) -> None:
    """Requests refused before a response started (4xx, 429, 503, 502/504 after retries) are
    counted and logged like the others; `model` is "-" until the name resolved."""
    fleet.metrics.observe_request(model, endpoint, exc.status, dur_s)
    if fleet.cfg.gateway.access_log:
        access("rid=%s model=%s worker=- status=%d dur_ms=%.1f error=%r", request_id(request), model,
                        exc.status, dur_s * 1000, exc.message[:200])


def prepare_upstream(pool: Pool, data: dict[str, Any]) -> tuple[bool, bool]:
    """Rewrite the body for the engine: served model id, max_tokens for engines that predate
    max_completion_tokens, and usage requested on the client's behalf (for metrics).
    Returns (stream, include_usage as the client asked)."""
    stream = data.get("stream") is True
    opts = data.get("stream_options")
    include_usage = stream and isinstance(opts, dict) and opts.get("include_usage") is True
    data["model"] = pool.cfg.served_model
    if data.get("max_completion_tokens") is not None and data.get("max_tokens") is None:
        data["max_tokens"] = data["max_completion_tokens"]
    if stream and pool.engine.usage_in_stream:
        data["stream_options"] = {**(opts or {}), "include_usage": True}
    return stream, include_usage


async def forward(request: Request, fleet: Fleet, pool: Pool, data: dict[str, Any], path: str,
                  endpoint: str, ctx: RouteContext, t0: float,
                  headers: dict[str, str] | None = None, *, comments: bool = False) -> Any:
    """The one entry point of every generation: admit, dispatch, and hand back the relay
    (an ASGI callable) that streams the answer and closes the exchange. The request is first
    adapted to the engine's contract (api/adapt.py: 400s for what it cannot serve, fan-out of
    `n` and prompt lists); a model still loading holds it (api/holds.py); with `comments` a held
    stream gets its head at once."""
    counter = fleet.prompt_counter(pool) if pool.engine.contract.stream_context_check else None
    plan = await adapt.prepare(pool, data, path, counter.count if counter else None)  # 400s; may fan out
    if plan.fanout:
        return await forward_all(plan.fanout, lambda body: forward(
            request, fleet, pool, body, path, endpoint, replace(ctx, exclude=set(ctx.exclude)), t0, headers),
            stream=data.get("stream") is True)
    rid = request_id(request)
    stream = data.get("stream") is True
    if fleet.draining:
        raise Unavailable("the gateway is shutting down; retry on another instance", retry_after_s=5)  # 503
    hold = holds.plan(fleet, pool)  # (503 at once when the load's learned time left is past the bound)
    if hold is not None and stream and comments:
        def refused(exc: GatewayError) -> None:
            record_rejection(fleet, request, pool.name, endpoint, exc, time.perf_counter() - t0)

        start = functools.partial(_forward, request, fleet, pool, data, path, endpoint, ctx, t0, headers, hold,
                                  plan.transform)
        return holds.HeldStream(hold, start, request_id=rid, headers=dict(headers or {}), failed=refused)
    return await _forward(request, fleet, pool, data, path, endpoint, ctx, t0, headers, hold, plan.transform)


async def _forward(request: Request, fleet: Fleet, pool: Pool, data: dict[str, Any], path: str,
                   endpoint: str, ctx: RouteContext, t0: float, headers: dict[str, str] | None,
                   hold: holds.Hold | None, transform: Callable[[bytes], bytes] | None) -> Any:
    rid = request_id(request)
    client_model = data["model"]
    stream, include_usage = prepare_upstream(pool, data)
    exchange = Exchange(rid, pool.name, registry=fleet.exchanges, t0=t0)
    exchange.task = fleet.current_task()
    exchange.observe = functools.partial(fleet.metrics.observe_verdict, pool.name)
    link = ClientLink.of(request.scope, request.receive, exchange.task)  # a client leaving cancels what we wait for
    try:
        await (hold.wait() if hold is not None else pool.ensure_ready())
        await pool.limiter.acquire()
        exchange.admitted(pool.limiter.release)
        if isinstance(pool, PDPool):
            opened = await fleet.pd_dispatcher.open(exchange, pool, path, data, ctx, stream=stream)
        else:
            assert isinstance(pool, ModelPool)
            opened = await fleet.dispatcher.open(exchange, pool, path, orjson.dumps(data), ctx, stream=stream)
    except BaseException as exc:
        link.close()
        exchange.close(Verdict.CLIENT_GONE)
        if isinstance(exc, asyncio.CancelledError) and link.absorb_cancel():
            fleet.metrics.observe_request(pool.name, endpoint, 499, time.perf_counter() - t0)
            fleet.metrics.model(pool.name).disconnects.inc()
            raise ClientGone("the client closed the connection before the response started") from None
        if isinstance(exc, asyncio.CancelledError) and exchange.absorb_abort():
            raise Unavailable(f"{exchange.aborted}; retry on another instance", retry_after_s=5) from None
        raise
    exchange.task = None
    # nothing awaits between here and the relay taking over; without this a disconnect in that
    # window would cancel whatever the caller (e.g. the Ollama adapter) awaits next
    link.stop_cancelling()
    mm = fleet.metrics.model(pool.name)

    def finish(out: Outcome) -> None:
        dur = time.perf_counter() - t0
        fleet.metrics.observe_request(pool.name, endpoint, out.status, dur)
        if out.ttft_s is not None:
            mm.ttft.observe(out.ttft_s)
        if out.prompt_tokens:
            mm.tokens_prompt.inc(out.prompt_tokens)
        if out.completion_tokens:
            mm.tokens_completion.inc(out.completion_tokens)
        if out.disconnected:
            mm.disconnects.inc()
        d = opened.attempt.decision
        error = fleet.metrics.observe_cache_prediction(pool.name, pool.policies[-1].name, d.predicted_cached_tokens,
                                                       d.matched_chars, len(ctx.text), out.prompt_tokens,
                                                       out.cached_tokens)
        fleet.stats.record(pool.name, status=out.status, ttft_s=out.ttft_s, prompt_tokens=out.prompt_tokens,
                           completion_tokens=out.completion_tokens, cache_hit=d.cache_hit, prediction_error=error)
        if fleet.cfg.gateway.access_log:
            access(
                "rid=%s model=%s worker=%s status=%d dur_ms=%.1f ttft_ms=%s in=%d out=%d attempts=%d%s%s",
                rid, pool.name, opened.worker.id, out.status, dur * 1000,
                f"{out.ttft_s * 1000:.1f}" if out.ttft_s is not None else "-",
                out.prompt_tokens, out.completion_tokens, opened.attempts,
                f" workers={out.extra['workers']}" if "workers" in out.extra else "",  # a migrated stream
                f" error={out.error!r}" if out.error else "")

    extra = dict(headers or {})
    extra["x-sglfleet-worker"] = opened.worker.id
    if stream:
        counter = fleet.prompt_counter(pool)
        counted = asyncio.ensure_future(asyncio.to_thread(counter.count, dict(data))) if counter else None
        return StreamRelay(opened, exchange, include_usage=include_usage, model=str(client_model),
                           finish=finish, headers=extra, link=link, prompt_tokens=counted,
                           transform=adapt.chain(transform,
                                                 mirror_sse if fleet.cfg.gateway.mirror_reasoning else None),
                           migration=migration.plan(fleet, pool, exchange, data, path, ctx, link, stream=True))
    return BodyRelay(opened, exchange, finish=finish, headers=extra, link=link,
                     transform=mirror_body if fleet.cfg.gateway.mirror_reasoning else None)
