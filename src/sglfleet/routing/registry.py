"""Model names as clients send them -> pools. Aliases and legacy names (e.g. Ollama-style
`qwen3.6:35b-a3b`) resolve to the served name; unknown names get a 404 listing what exists."""

from __future__ import annotations

from collections.abc import Iterator

from sglfleet.core.errors import ModelNotFound
from sglfleet.routing.pool import ModelPool


class Registry:
    def __init__(self) -> None:
        self._pools: dict[str, ModelPool] = {}
        self._names: dict[str, ModelPool] = {}
        self._folded: dict[str, ModelPool] = {}

    def add(self, pool: ModelPool) -> None:
        self._pools[pool.name] = pool
        for n in (pool.name, *pool.cfg.aliases):
            self._names[n] = pool
            self._folded.setdefault(n.casefold(), pool)

    def __iter__(self) -> Iterator[ModelPool]:
        return iter(self._pools.values())

    def __len__(self) -> int:
        return len(self._pools)

    def get(self, name: str) -> ModelPool | None:
        return self._pools.get(name)

    def resolve(self, name: object) -> ModelPool:
        if isinstance(name, str):
            pool = self._names.get(name) or self._folded.get(name.casefold())
            if pool is not None:
                return pool
        available = ", ".join(sorted(self._pools)) or "(none)"
        shown = repr(name)[:120]
        raise ModelNotFound(f"model {shown} does not exist; available models: {available}",
                            param="model")
