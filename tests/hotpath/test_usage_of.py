"""A complete response's usage is read by parsing only the usage object."""

from __future__ import annotations

import orjson
import pytest

from sglfleet.api.relay import usage_of

USAGE = {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13, "prompt_tokens_details": {"cached_tokens": 7}}


@pytest.mark.parametrize("body", [
    {"id": "x", "choices": [{"message": {"content": 'say "usage": {"prompt_tokens": 999}'}}], "usage": USAGE},
    {"usage": USAGE, "timings": {"predicted_ms": 1.5}},  # not last (llama.cpp adds timings)
    {"usage": {**USAGE, "note": "braces {} in a string"}},
])
def test_the_usage_object_is_found(body: dict) -> None:
    got = usage_of(orjson.dumps(body))
    assert got is not None and {k: got[k] for k in USAGE} == USAGE


@pytest.mark.parametrize("raw", [b'{"choices": [], "usage": null}', b'{"a": 1}', b'not json "usage"',
                                 b'{"content": "the \\"usage\\": {}"}'])
def test_no_usage(raw: bytes) -> None:
    assert usage_of(raw) is None
