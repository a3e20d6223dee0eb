"""Pure ASGI middleware (no BaseHTTPMiddleware: it hides disconnects and costs time on
streams): request ids on every response, taken from the client when well-formed."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_RID_HEADERS = (b"x-request-id", b"x-correlation-id")
# New ids: 16 random hex digits per process, then a counter (unique, not secret; one
# getrandom syscall per process instead of one per request)
_RID_PREFIX = os.urandom(8).hex()
_rid_counter = itertools.count(1)


def _new_rid_prefix() -> None:  # a forked child must not repeat its parent's ids
    global _RID_PREFIX, _rid_counter
    _RID_PREFIX, _rid_counter = os.urandom(8).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_new_rid_prefix)


def assign_request_id(scope: Scope) -> str:
    """The client's x-request-id (or x-correlation-id) when well-formed, else a new one
    (32 hex digits, which engines that insist on a UUID accept); kept in scope["state"]."""
    rid = None
    for name, value in scope["headers"]:
        if name in _RID_HEADERS and _SAFE_ID.match(value):
            rid = value.decode()
            break
    if rid is None:
        rid = f"{_RID_PREFIX}{next(_rid_counter):016x}"
    scope.setdefault("state", {})["request_id"] = rid
    return rid


def send_with_request_id(send: Send, rid: str) -> Send:
    rid_header = (b"x-request-id", rid.encode())

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(k.lower() == b"x-request-id" for k, _ in headers):
                headers.append(rid_header)
                message["headers"] = headers
        await send(message)

    return send_with_id


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, send_with_request_id(send, assign_request_id(scope)))
