"""What every request to an engine shares: the headers (`upstream_headers`, generation and
control plane alike) and the control-plane client (health, heartbeats, sleep, loads), one
aiohttp session. Generation requests go through upstream/http1.py."""

from __future__ import annotations

import re
import uuid

import aiohttp


def make_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=0,  # the router's limiter bounds concurrency, not the pool
        keepalive_timeout=60,
        ttl_dns_cache=300,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),  # engines set no cookies; skips jar filtering per request
    )


_HEX32 = re.compile(r"[0-9a-f]{32}")


def _is_uuid(value: str) -> bool:
    if _HEX32.fullmatch(value):  # the gateway's own ids
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def upstream_headers(auth: str | None, request_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Headers for an engine request; `auth` is the worker's Authorization value. llama-cpp-python's
    server rejects (400) an x-request-id that is not a UUID, so other ids travel only as
    x-sglfleet-request-id."""
    h = {"content-type": "application/json", "x-sglfleet-request-id": request_id}
    if _is_uuid(request_id):
        h["x-request-id"] = request_id
    if auth:
        h["authorization"] = auth
    if extra:
        h.update(extra)
    return h
