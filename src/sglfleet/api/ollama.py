"""The Ollama API on the same fleet: clients written for Ollama (Roo Code's Ollama provider,
Open WebUI, Continue, the `ollama` Python/JS clients, bots) switch servers without changes.

    GET  /                  "Ollama is running"
    GET  /api/version       {"version": ...}
    GET  /api/tags          models (+ their Ollama-style aliases) with details
    POST /api/show          details, model_info with "<family>.context_length", capabilities
    GET  /api/ps            models with a ready worker
    POST /api/chat          -> /v1/chat/completions
    POST /api/generate      -> /v1/chat/completions (/v1/completions for raw or suffix)
    POST /api/embed         -> /v1/embeddings (embedding models only)
    POST /api/embeddings    legacy single-prompt form of /api/embed

Generation goes through `openai.forward` — the same dispatcher, retries, limits, metrics and
access log as /v1 — and `ollama_stream.ollama_adapter` rewrites the relayed bytes. Errors are
Ollama's `{"error": "..."}` with the gateway's status codes. Model names resolve through the
registry, so `qwen3.6:35b-a3b` listed as an alias reaches `qwen3.6-35b-a3b`.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from sglfleet import __version__
from sglfleet.api.body import parse_json_object, read_body, validate
from sglfleet.api.embeddings import dispatch as dispatch_embeddings
from sglfleet.api.embeddings import rows, upstream_body
from sglfleet.api.ollama_meta import (
    OLLAMA_COMPAT_VERSION,
    ModelMeta,
    now_rfc3339,
)
from sglfleet.api.ollama_stream import Converter, embedding_response, ndjson, ollama_adapter
from sglfleet.api.ollama_translate import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    LegacyEmbeddingsRequest,
    ShowRequest,
    chat_body,
    check_capabilities,
    generate_body,
)
from sglfleet.api.openai import fleet_of, forward
from sglfleet.api.serves import require_embedding
from sglfleet.api.sockets import listen_socket
from sglfleet.config import TaskRoute
from sglfleet.core.auth import check_api_key
from sglfleet.core.errors import GatewayError, ModelNotFound
from sglfleet.fleet import Fleet
from sglfleet.routing.policies import RouteContext
from sglfleet.routing.pool import ModelPool
from sglfleet.routing.task_routes import apply_route, last_user_text
from sglfleet.routing.text import chat_text

Endpoint = Callable[[Request], Awaitable[Any]]
_MANAGEMENT = ("pull", "push", "create", "copy", "delete", "blobs")


def ollama_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(ndjson({"error": message}), status, headers=headers, media_type="application/json")


def ollama_errors(endpoint: Endpoint) -> Endpoint:
    """Gateway errors raised before the response starts become `{"error": "..."}`."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Any:
        try:
            return await endpoint(request)
        except GatewayError as exc:
            return ollama_error(exc.status, exc.message, exc.headers)

    return wrapped


def _meta(request: Request) -> ModelMeta:
    return request.app.state.ollama_meta  # type: ignore[no-any-return]


def _authorized_fleet(request: Request) -> Fleet:
    fleet = fleet_of(request)
    gw = fleet.cfg.gateway
    check_api_key(request.headers.get("authorization"), gw.api_keys, gw.admin_keys)
    return fleet


async def _body(request: Request, fleet: Fleet, model: type[BaseModel]) -> Any:
    gw = fleet.cfg.gateway
    data = parse_json_object(await read_body(request, gw.max_body_bytes, gw.limits.body_timeout_s))
    return validate(model, data)


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def version(request: Request) -> Response:
    return ollama_json({"version": OLLAMA_COMPAT_VERSION, "sglfleet": __version__})


def ollama_json(data: Any, status: int = 200) -> Response:
    return Response(ndjson(data), status, media_type="application/json")


@ollama_errors
async def tags(request: Request) -> Response:
    fleet, meta = _authorized_fleet(request), _meta(request)
    return ollama_json({"models": [e for pool in fleet.registry for e in meta.tag_entries(pool)]})


@ollama_errors
async def show(request: Request) -> Response:
    fleet = _authorized_fleet(request)
    req: ShowRequest = await _body(request, fleet, ShowRequest)
    return ollama_json(_meta(request).show(_pool_named(fleet, req.target)))


@ollama_errors
async def ps(request: Request) -> Response:
    fleet, meta = _authorized_fleet(request), _meta(request)
    running = (meta.running(pool) for pool in fleet.registry)
    return ollama_json({"models": [r for r in running if r is not None]})


def _base_name(name: str) -> str | None:
    """Ollama's implicit tag: `name:latest` is `name`."""
    return name[: -len(":latest")] if name.endswith(":latest") else None


def _pool_named(fleet: Fleet, name: str) -> ModelPool:
    try:
        return fleet.registry.resolve(name)
    except ModelNotFound:
        base = _base_name(name)
        if base is None:
            raise
        return fleet.registry.resolve(base)


async def _target(fleet: Fleet, name: str, text: str | None) -> tuple[ModelPool, TaskRoute | None]:
    """The pool for a model name; a virtual model (`auto`) is classified on `text` first
    (None: nothing to classify, e.g. a load request: its default route's model)."""
    base = _base_name(name)
    router = fleet.virtual.get(name.casefold()) or (fleet.virtual.get(base.casefold()) if base else None)
    if router is None:
        return _pool_named(fleet, name), None
    if text is None:
        return fleet.registry.resolve(router.rules.default.target), None
    c = await router.classify(text)
    fleet.metrics.route_decisions.labels(router.vm.name, c.route.name, c.route.target).inc()
    return fleet.registry.resolve(c.route.target), c.route


async def _loaded(pool: ModelPool, model: str, kind: str) -> Response:
    """An empty prompt asks Ollama to load the model: wait until it can serve, then say so."""
    await pool.ensure_ready()
    base = {"model": model, "created_at": now_rfc3339(), "done": True, "done_reason": "load"}
    reply = {"message": {"role": "assistant", "content": ""}} if kind == "chat" else {"response": ""}
    body = {**base, **reply}
    return ollama_json(body)


@ollama_errors
async def chat(request: Request) -> Any:
    t0 = time.perf_counter()
    fleet = _authorized_fleet(request)
    req: ChatRequest = await _body(request, fleet, ChatRequest)
    turns = [{"role": m.role, "content": m.content} for m in req.messages]
    pool, route = await _target(fleet, req.model, last_user_text(turns) if turns else None)
    if not req.messages:
        return await _loaded(pool, req.model, "chat")
    check_capabilities(pool.cfg, client_model=req.model, tools=bool(req.tools),
                       think=req.think not in (None, False),
                       images=any(m.images for m in req.messages))
    body = chat_body(req, pool.cfg)
    if route is not None:
        apply_route(body, route)
    text = chat_text(body["messages"])
    conv = Converter("chat", req.model, t0, show_thinking=req.think is not False, prompt_text=text)
    return await _generate(request, fleet, pool, body, "/v1/chat/completions", "chat", text, conv)


@ollama_errors
async def generate(request: Request) -> Any:
    t0 = time.perf_counter()
    fleet = _authorized_fleet(request)
    req: GenerateRequest = await _body(request, fleet, GenerateRequest)
    pool, route = await _target(fleet, req.model, req.prompt if req.prompt or req.suffix else None)
    if not req.prompt and not req.suffix:
        return await _loaded(pool, req.model, "generate")
    check_capabilities(pool.cfg, client_model=req.model, tools=False,
                       think=req.think not in (None, False), images=bool(req.images))
    path, body = generate_body(req, pool.cfg)
    if route is not None:
        apply_route(body, route)
    endpoint = "completions" if path == "/v1/completions" else "chat"
    text = (req.system or "") + " " + req.prompt if req.system else req.prompt
    conv = Converter("generate", req.model, t0, show_thinking=req.think is not False, prompt_text=text)
    return await _generate(request, fleet, pool, body, path, endpoint, text, conv)


async def _generate(request: Request, fleet: Fleet, pool: ModelPool, body: dict[str, Any], path: str,
                    endpoint: str, text: str, conv: Converter) -> Any:
    gw = fleet.cfg.gateway
    ctx = RouteContext(text=text, routing_key=request.headers.get(gw.routing_key_header))
    relay = await forward(request, fleet, pool, body, path, endpoint, ctx, conv.t0)
    if body["stream"]:
        return ollama_adapter(relay, stream=conv)
    return ollama_adapter(relay, whole=conv.whole)


async def _embed(request: Request, fleet: Fleet, model: str, inputs: list[str], t0: float,
                 extra: dict[str, Any]) -> Any:
    pool = fleet.registry.resolve(model)
    require_embedding(fleet, pool, model)
    body = upstream_body(pool, model, inputs, extra.pop("dimensions", None), extra)
    return await dispatch_embeddings(request, fleet, pool, body, t0, "ollama_embed")


def _embedding_response(model: str, t0: float, legacy: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """One vector per input (per-token vectors from llama.cpp are pooled, see api/embeddings.py)."""
    return lambda data: embedding_response(model, t0, {**data, "data": rows(data)}, legacy=legacy)


@ollama_errors
async def embed(request: Request) -> Any:
    t0 = time.perf_counter()
    fleet = _authorized_fleet(request)
    req: EmbedRequest = await _body(request, fleet, EmbedRequest)
    inputs = [req.input] if isinstance(req.input, str) else list(req.input)
    extra = {"dimensions": req.dimensions} if req.dimensions else {}
    relay = await _embed(request, fleet, req.model, inputs, t0, extra)
    return ollama_adapter(relay, whole=_embedding_response(req.model, t0, legacy=False))


@ollama_errors
async def embeddings(request: Request) -> Any:
    t0 = time.perf_counter()
    fleet = _authorized_fleet(request)
    req: LegacyEmbeddingsRequest = await _body(request, fleet, LegacyEmbeddingsRequest)
    relay = await _embed(request, fleet, req.model, [req.prompt], t0, {})
    return ollama_adapter(relay, whole=_embedding_response(req.model, t0, legacy=True))


async def unsupported(request: Request) -> Response:
    name = request.url.path.removeprefix("/api/").split("/", 1)[0]
    if name in _MANAGEMENT:
        return ollama_error(501, f"/api/{name} is not available: sglfleet serves the models in its "
                                 "fleet file; add or change models there")
    return ollama_error(404, f"{request.method} {request.url.path} is not part of the Ollama API served here")


def register(app: Any) -> None:
    """Add the Ollama routes to the gateway app (after its own routes)."""
    app.state.ollama_meta = ModelMeta(started_at=fleet_of_app(app).started_at)
    app.add_route("/", root, methods=["GET"])
    app.add_route("/api/version", version, methods=["GET"])
    app.add_route("/api/tags", tags, methods=["GET"])
    app.add_route("/api/show", show, methods=["POST"])
    app.add_route("/api/ps", ps, methods=["GET"])
    app.add_route("/api/chat", chat, methods=["POST"])
    app.add_route("/api/generate", generate, methods=["POST"])
    app.add_route("/api/embed", embed, methods=["POST"])
    app.add_route("/api/embeddings", embeddings, methods=["POST"])
    app.add_route("/api/{rest:path}", unsupported, methods=["GET", "POST", "DELETE", "PUT"])


def fleet_of_app(app: Any) -> Fleet:
    return app.state.fleet  # type: ignore[no-any-return]


OLLAMA_DEFAULT_PORT = 11434


def bind_socket(host: str, port: int = OLLAMA_DEFAULT_PORT) -> socket.socket:
    """A second listening socket for the same app (`gateway.ollama_port`), so clients that
    point at Ollama's port need no change: one server, one lifespan, two ports."""
    return listen_socket(host, port)
