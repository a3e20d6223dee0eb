"""Bearer-key checks with constant-time comparison. Keys never reach logs or metrics."""

from __future__ import annotations

import hmac

from sglfleet.core.errors import Forbidden, Unauthorized


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _matches(token: str, keys: tuple[str, ...]) -> bool:
    ok = False
    t = token.encode()
    for k in keys:  # no early exit: time does not depend on which key matched
        ok |= hmac.compare_digest(t, k.encode())
    return ok


def check_api_key(authorization: str | None, api_keys: tuple[str, ...], admin_keys: tuple[str, ...]) -> None:
    """`/v1/*`: any API key (admin keys also work). No keys configured = open."""
    if not api_keys:
        return
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if not _matches(token, api_keys + admin_keys):
        raise Unauthorized("invalid API key")


def check_admin_key(authorization: str | None, admin_keys: tuple[str, ...], api_keys: tuple[str, ...]) -> None:
    """`/admin/*`: an admin key. With no admin keys configured, admin is open only when the
    gateway has no API keys either (a local, unauthenticated setup)."""
    if not admin_keys:
        if api_keys:
            raise Forbidden("admin API is disabled: set gateway.admin_keys")
        return
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("missing admin key: send 'Authorization: Bearer <admin key>'")
    if not _matches(token, admin_keys):
        raise Forbidden("this key is not an admin key")
