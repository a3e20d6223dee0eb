"""/openapi.json for every public route, not only the FastAPI-declared /admin ones.

The generation routes are plain Starlette routes (they return raw ASGI relays), which FastAPI
leaves out of its schema. Their request bodies are the same pydantic models the routes
validate with, so the documented schema and the gateway's checks cannot drift apart; API
fuzzers (schemathesis) test the gateway from this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from sglfleet.api.anthropic_translate import CountTokensRequest, MessagesRequest
from sglfleet.api.embeddings import EmbeddingsRequest
from sglfleet.api.ollama_translate import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    LegacyEmbeddingsRequest,
    ShowRequest,
)
from sglfleet.api.responses_translate import ResponsesRequest
from sglfleet.api.schemas import ChatCompletionRequest, CompletionRequest

_REF = "#/components/schemas/{model}"
# (method, path, tag, summary, request model, content type of a 200)
ROUTES: list[tuple[str, str, str, str, type[BaseModel] | None, str]] = [
    ("post", "/v1/chat/completions", "openai", "Chat completion (JSON, or SSE when stream is true)",
     ChatCompletionRequest, "application/json"),
    ("post", "/v1/completions", "openai", "Text completion", CompletionRequest, "application/json"),
    ("get", "/v1/models", "openai", "List models", None, "application/json"),
    ("get", "/v1/models/{model_id}", "openai", "Retrieve a model", None, "application/json"),
    ("post", "/v1/embeddings", "openai", "Embeddings", EmbeddingsRequest, "application/json"),
    ("post", "/v1/responses", "openai", "OpenAI Responses", ResponsesRequest, "application/json"),
    ("post", "/v1/messages", "anthropic", "Anthropic Messages", MessagesRequest, "application/json"),
    ("post", "/v1/messages/count_tokens", "anthropic", "Anthropic token count", CountTokensRequest,
     "application/json"),
    ("get", "/api/version", "ollama", "Ollama API version", None, "application/json"),
    ("get", "/api/tags", "ollama", "Ollama model list", None, "application/json"),
    ("get", "/api/ps", "ollama", "Ollama running models", None, "application/json"),
    ("post", "/api/show", "ollama", "Ollama model details", ShowRequest, "application/json"),
    ("post", "/api/chat", "ollama", "Ollama chat (NDJSON when stream is true)", ChatRequest, "application/json"),
    ("post", "/api/generate", "ollama", "Ollama generate", GenerateRequest, "application/json"),
    ("post", "/api/embed", "ollama", "Ollama embeddings", EmbedRequest, "application/json"),
    ("post", "/api/embeddings", "ollama", "Ollama legacy embeddings", LegacyEmbeddingsRequest, "application/json"),
    ("get", "/health", "ops", "Liveness", None, "application/json"),
    ("get", "/ready", "ops", "Readiness (503 until a model can serve)", None, "application/json"),
    ("get", "/metrics", "ops", "Prometheus metrics", None, "text/plain"),
]
_ERROR = {"type": "object", "properties": {"error": {}}}


def _operation(tag: str, summary: str, model: type[BaseModel] | None, ctype: str,
               components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"tags": [tag], "summary": summary, "responses": {
        "200": {"description": "OK", "content": {ctype: {"schema": {}}}},
        "4XX": {"description": "Refused (OpenAI/Ollama error shape)",
                "content": {"application/json": {"schema": _ERROR}}}}}
    if model is not None:
        schema = model.model_json_schema(ref_template=_REF)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}}
    return op


def document(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    paths = spec.setdefault("paths", {})
    for method, path, tag, summary, model, ctype in ROUTES:
        op = _operation(tag, summary, model, ctype, components)
        if "{model_id}" in path:
            op["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
        paths.setdefault(path, {})[method] = op
    return spec


def install(app: FastAPI) -> None:
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "spec" not in cache:
            cache["spec"] = document(app)
        return cache["spec"]

    app.openapi = openapi  # type: ignore[method-assign]
