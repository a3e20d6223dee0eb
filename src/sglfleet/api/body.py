"""Reading and decoding request bodies with a size limit, without buffering past it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from sglfleet.core.errors import BadRequest, BodyTooLarge, InvalidJSON, RequestTimeout, UploadAborted

_KEYS: dict[str, bytes] = {}  # header name -> its lower-case bytes (a handful of names)


def header(request: Request, name: str) -> str | None:
    """One request header, read from the scope (names are lower-case there) without building
    Starlette's Headers: the generation routes read two or three per request."""
    key = _KEYS.get(name)
    if key is None:
        key = _KEYS[name] = name.lower().encode("latin-1")
    for k, v in request.scope["headers"]:
        if k == key:
            return v.decode("latin-1")
    return None


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The whole body, at most `limit` bytes (413), all of it within `timeout_s` seconds
    (408, the connection is then closed); a client that leaves mid-upload is UploadAborted."""
    declared = header(request, "content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
    ext = request.scope.get("extensions")
    if ext and ext.get(BODY_COMPLETE):  # the server holds the whole body: no wait, no deadline
        message = await request.receive()  # (one message: the request is complete)
        if message["type"] != "http.request":
            raise UploadAborted("the client closed the connection after sending the request body")
        body: bytes = message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
        request.scope[BODY_READ] = True
        return body
    return await _read_arriving(request, limit, timeout_s)


async def _read_arriving(request: Request, limit: int, timeout_s: float | None) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s "
                             f"({size} bytes received)") from None
    except ClientDisconnect:
        raise UploadAborted(f"the client closed the connection while sending the request body "
                            f"({size} bytes received)") from None
    request.scope[BODY_READ] = True
    return b"".join(chunks)


BODY_READ = "sglfleet.body_read"  # scope key: the request body was read to its end
# A scope extension set by the gateway's HTTP protocol (api/server_limits.py) once the request
# message is complete: the body is all in the server's buffer, one receive() returns it.
BODY_COMPLETE = "sglfleet.body_complete"


def body_left_unread(request: Request) -> bool:
    """The client sent (or is sending) a body the gateway did not read to its end: the
    connection cannot carry another request, so the answer says `connection: close`."""
    if request.scope.get(BODY_READ):
        return False
    h = request.headers
    return h.get("content-length", "0").strip() not in ("", "0") or "chunked" in h.get("transfer-encoding", "")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidJSON("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidJSON(f"request body must be a JSON object, not {type(data).__name__}")
    return data


def validate(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in _data_path(data, first["loc"])) or None
        msg = first["msg"]
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise BadRequest(f"invalid value for '{loc}': {msg}{more}" if loc else f"{msg}{more}", param=loc) from None


def _data_path(data: Any, loc: tuple[Any, ...]) -> list[Any]:
    """The part of a pydantic error location that exists in the data (drops union tags such
    as `temperature.int`), plus the first missing key (e.g. a required field)."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str):
            path.append(part)
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        else:
            break
    return path
