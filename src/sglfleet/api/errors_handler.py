"""The one place where exceptions become HTTP responses (OpenAI error shape, no tracebacks)."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from sglfleet.api.body import body_left_unread
from sglfleet.core.errors import GatewayError, error_body

log = logging.getLogger("sglfleet.api")


def _json(status: int, body: dict, headers: dict[str, str] | None = None,
          request: Request | None = None) -> Response:
    if request is not None and body_left_unread(request):
        # answered before its body was read (401, 413, ...): the server closes the connection
        # after this response, and says so, so that clients do not reuse it
        headers = {**(headers or {}), "connection": "close"}
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


async def gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    if exc.status >= 500:
        log.warning("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.message)
    return _json(exc.status, exc.body(), exc.headers, request)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return _json(exc.status_code, error_body(exc.status_code, message, code=code), dict(exc.headers or {}), request)


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    return _json(400, error_body(400, f"invalid value for '{loc}': {first.get('msg')}", param=loc))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _json(500, error_body(500, "internal error in the gateway; see its log", "internal_error",
                                 code="internal_error"))


async def to_response(request: Request, exc: Exception) -> Response:
    """The same mapping as the installed handlers, for routes served outside FastAPI."""
    if isinstance(exc, GatewayError):
        return await gateway_error(request, exc)
    if isinstance(exc, HTTPException):
        return await http_error(request, exc)
    return await unexpected_error(request, exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
