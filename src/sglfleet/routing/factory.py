"""Policies by name: the `policy:` of a model (or of a prefill/decode group) -> a Policy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sglfleet.config import CacheAwareConfig
from sglfleet.routing.policies import CacheAware, LeastLoad, Policy, PowerOfTwo, Random, RoundRobin, Session

if TYPE_CHECKING:
    from sglfleet.config import ModelConfig


def make_policy(name: str, cache_cfg: CacheAwareConfig | None = None, seed: int | None = None,
                model: ModelConfig | None = None) -> Policy:
    if name == "round_robin":
        return RoundRobin()
    if name == "random":
        return Random(seed)
    if name == "least_load":
        return LeastLoad()
    if name == "power_of_two":
        return PowerOfTwo(seed)
    if name == "cache_aware":
        return CacheAware(cache_cfg)
    if name == "session":
        return Session(cache_cfg)
    if name == "kv_events":
        from sglfleet.routing.kv_policy import KvEventsPolicy  # pyzmq and a tokenizer: only when asked for

        if model is None:
            raise ValueError("policy kv_events needs the model's configuration")
        kv = model.kv_events
        if kv.tokenizer is None and model.model_path:
            kv = kv.model_copy(update={"tokenizer": model.model_path})
        return KvEventsPolicy(kv, cache_cfg, urls=model.urls)
    raise ValueError(f"unknown policy {name!r}")
