"""SGLang's memory saver on the simulator: `/release_memory_occupation` and
`/resume_memory_occupation` (SGLang's http_server.py; the engine must run with
`--enable-memory-saver`, and `--enable-weights-cpu-backup` for the weights to survive).

Request body (both routes, optional): `{"tags": ["weights", "kv_cache"]}`; no tags means every
region. Success is HTTP 200 with an empty JSON body (`null`, what SGLang's handler returns);
a failure is SGLang's error shape. While any region is released, generation answers 503 and
/health 503, as a sleeping engine cannot serve.

The simulator really holds `memory_mb` of RAM (touched pages: weights 3/4, KV cache 1/4), so
a gateway measuring the process sees the release and the resume; each call takes the
configured time (`release_ms`, `resume_ms`: simulated ms, scaled by time_scale).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sglfleet.sim.protocol import BadRequest, error_response, read_json

TAGS = ("weights", "kv_cache")
_SHARE = {"weights": 0.75, "kv_cache": 0.25}


class MemorySaver:
    def __init__(self, memory_mb: int, release_s: float, resume_s: float) -> None:
        self.total = memory_mb * (1 << 20)
        self.release_s = release_s
        self.resume_s = resume_s
        self.regions: dict[str, bytearray | None] = {t: self._alloc(t) for t in TAGS}
        self._lock = asyncio.Lock()

    def _alloc(self, tag: str) -> bytearray:
        return bytearray(b"\x01") * int(self.total * _SHARE[tag])  # touched: counted in RSS

    @property
    def released(self) -> list[str]:
        return [t for t, buf in self.regions.items() if buf is None]

    @property
    def asleep(self) -> bool:
        return bool(self.released)

    async def _tags(self, request: web.Request) -> list[str]:
        if not request.can_read_body:
            return list(TAGS)
        body = await read_json(request)
        tags = body.get("tags")
        if tags is None:
            return list(TAGS)
        if not isinstance(tags, list) or any(t not in TAGS for t in tags):
            raise BadRequest(f"'tags' must be a list of {list(TAGS)}")
        return tags

    async def release(self, request: web.Request) -> web.Response:
        try:
            tags = await self._tags(request)
        except BadRequest as exc:
            return error_response(400, str(exc))
        async with self._lock:
            await asyncio.sleep(self.release_s)
            for t in tags:
                self.regions[t] = None
        return web.json_response(None)

    async def resume(self, request: web.Request) -> web.Response:
        try:
            tags = await self._tags(request)
        except BadRequest as exc:
            return error_response(400, str(exc))
        async with self._lock:
            await asyncio.sleep(self.resume_s)
            for t in tags:
                if self.regions[t] is None:
                    self.regions[t] = self._alloc(t)
        return web.json_response(None)
