"""Shared pieces of the fleet-file models: the frozen base class, names, URL checks."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from sglfleet.core.redact import redact_url
from sglfleet.engines.llamacpp import BUILTIN_MODEL

DEFAULT_MODEL_NAME = "smollm2-135m"
DEFAULT_EMBED_MODEL_NAME = "smollm2-135m-embed"  # the same GGUF in llama.cpp's embedding mode
ENV_PREFIX = "SGLFLEET_"

__all__ = ["BUILTIN_MODEL", "DEFAULT_MODEL_NAME", "ENV_PREFIX", "EngineName", "Frozen", "PolicyName", "Priority",
           "check_urls"]

EngineName = Literal["llamacpp", "sglang", "vllm", "external"]
PolicyName = Literal["round_robin", "random", "least_load", "power_of_two", "cache_aware", "session", "kv_events"]
Priority = Literal["critical", "high", "normal", "low"]


def check_urls(urls: tuple[str, ...]) -> tuple[str, ...]:
    for url in urls:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"worker url {redact_url(url)!r} must start with http:// or https://")
    return tuple(u.rstrip("/") for u in urls)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
