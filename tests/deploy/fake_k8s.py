"""A small Kubernetes API server (aiohttp.web on 127.0.0.1) speaking the real pod list/watch
protocol: PodList with metadata.resourceVersion, then newline-delimited watch events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web


def pod(name: str, ip: str, *, ready: bool, labels: dict[str, str], rv: int,
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "llm", "labels": labels, "resourceVersion": str(rv),
                         **({"annotations": annotations} if annotations else {})},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class FakeKubeAPI:
    def __init__(self, token: str | None) -> None:  # None: no authentication
        self.token = token
        self.rv = 100
        self.pods: dict[str, dict[str, Any]] = {}
        self.watchers: list[asyncio.Queue[dict[str, Any] | None]] = []
        self.requests: list[dict[str, str]] = []
        self.expire_next_watch = False
        self.url = ""
        self._runner: web.AppRunner | None = None

    def _matches(self, p: dict[str, Any], selector: str) -> bool:
        labels = p["metadata"]["labels"]
        return all(labels.get(k) == v for k, _, v in (s.partition("=") for s in selector.split(",") if s))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        selector = request.query.get("labelSelector", "")
        if request.query.get("watch") != "true":
            items = [p for p in self.pods.values() if self._matches(p, selector)]
            return web.json_response({"kind": "PodList", "apiVersion": "v1",
                                      "metadata": {"resourceVersion": str(self.rv)}, "items": items})
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        if self.expire_next_watch:
            self.expire_next_watch = False
            err = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                               "message": "too old resource version"}}
            await resp.write(json.dumps(err).encode() + b"\n")
            return resp
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.watchers.append(queue)
        try:
            while (event := await queue.get()) is not None:
                if self._matches(event["object"], selector):
                    await resp.write(json.dumps(event).encode() + b"\n")
        finally:
            self.watchers.remove(queue)
        return resp

    def emit(self, kind: str, obj: dict[str, Any]) -> None:
        for q in self.watchers:
            q.put_nowait({"type": kind, "object": obj})

    def set_pod(self, name: str, ip: str, *, ready: bool, labels: dict[str, str],
                annotations: dict[str, str] | None = None) -> None:
        self.rv += 1
        kind = "MODIFIED" if name in self.pods else "ADDED"
        self.pods[name] = pod(name, ip, ready=ready, labels=labels, rv=self.rv, annotations=annotations)
        self.emit(kind, self.pods[name])

    def delete_pod(self, name: str) -> None:
        self.rv += 1
        obj = self.pods.pop(name)
        self.emit("DELETED", obj)

    def drop_watches(self) -> None:
        for q in list(self.watchers):
            q.put_nowait(None)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.drop_watches()
        if self._runner:
            await self._runner.cleanup()
