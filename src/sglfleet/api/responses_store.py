"""The store behind `previous_response_id` and `GET /v1/responses/{id}`: bounded, in memory,
with a TTL.

Each stored response keeps the response object and the conversation it ends (chat messages:
the history, the input, the answer), so a follow-up sends only its new input. Bounds: entries
expire `ttl_s` after they were stored; beyond `max_entries` or `max_bytes` (the JSON size of
the conversations) the oldest go first. Nothing is written to disk: a restarted gateway, or
another gateway process (`--workers N`, replicas behind a load balancer), does not know the id
and answers 404; clients then send the whole conversation (`store: false` clients such as
Codex CLI always do).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_TTL_S = 3600.0
DEFAULT_MAX_ENTRIES = 2048
DEFAULT_MAX_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Stored:
    response: dict[str, Any]
    messages: list[dict[str, Any]]
    expires: float
    size: int


class ResponseStore:
    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S, max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._items: OrderedDict[str, Stored] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        self._expire()
        return len(self._items)

    def put(self, response: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        size = len(orjson.dumps(messages)) + len(orjson.dumps(response))
        if size > self.max_bytes:
            return  # larger than the whole budget: not kept (a follow-up gets a clear 404)
        self.delete(response["id"])
        self._items[response["id"]] = Stored(response, messages, self.clock() + self.ttl_s, size)
        self._bytes += size
        while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
            self._drop_oldest()

    def get(self, response_id: str) -> Stored | None:
        self._expire()
        return self._items.get(response_id)

    def delete(self, response_id: str) -> bool:
        old = self._items.pop(response_id, None)
        if old is None:
            return False
        self._bytes -= old.size
        return True

    def _drop_oldest(self) -> None:
        _, old = self._items.popitem(last=False)
        self._bytes -= old.size

    def _expire(self) -> None:
        now = self.clock()
        while self._items:
            first = next(iter(self._items.values()))
            if first.expires > now:
                return
            self._drop_oldest()
