"""Bad input on every translated route: a 4xx in the route's own error shape, never a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ollama_helpers import Gateway

from tests.apis.conftest import KEY

ROUTES = ["/v1/messages", "/v1/messages/count_tokens", "/v1/responses", "/v1/embeddings"]
JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
# bodies near the real shapes: known keys with random values
FIELDS = ["model", "messages", "max_tokens", "system", "tools", "tool_choice", "thinking", "input", "instructions",
          "previous_response_id", "encoding_format", "dimensions", "stream", "text", "reasoning", "stop_sequences"]
BODY = st.fixed_dictionaries({"model": st.sampled_from(["simchat", "simembed", "toolbot", "nope", 3])},
                             optional={f: JSON for f in FIELDS if f != "model"})


def _check(r: httpx.Response, route: str) -> None:
    assert r.status_code < 500, (route, r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        if route.startswith("/v1/messages"):
            assert body["type"] == "error" and body["error"]["type"] and body["error"]["message"]
        else:
            assert body["error"]["message"] and body["error"]["type"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"x"', b"null", b'{"model": null}'])
def test_malformed_bodies(gw: Gateway, route: str, raw: bytes) -> None:
    r = httpx.post(gw.url + route, content=raw, headers={"x-api-key": KEY, "authorization": f"Bearer {KEY}"},
                   timeout=30)
    assert 400 <= r.status_code < 500
    _check(r, route)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=BODY)
def test_random_bodies_never_5xx(gw: Gateway, route: str, body: dict[str, Any]) -> None:
    body.pop("stream", None)  # a valid streamed request answers 200 and streams: not the point here
    r = httpx.post(gw.url + route, json=body, headers={"x-api-key": KEY, "authorization": f"Bearer {KEY}"},
                   timeout=30)
    _check(r, route)
