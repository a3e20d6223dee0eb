"""Kubernetes discovery: engine pods found by label selector, through the API's list + watch.

`PodWatcher` lists the pods (`GET /api/v1/namespaces/NS/pods?labelSelector=...`), then
watches from the list's `resourceVersion` (`watch=true`, newline-delimited JSON events
ADDED / MODIFIED / DELETED / BOOKMARK / ERROR). A pod is a worker while it is Ready, has
an IP and is not terminating. A prefill pod's bootstrap port (SGLang's
`--disaggregation-bootstrap-port`) is read from its `sglfleet.io/bootstrap-port` annotation
(or SGLang router's `sglang.ai/bootstrap-port`), else `bootstrap_port` in the config.
On `410 Gone` (resourceVersion expired) or a dropped connection it lists again, so missed
events are reconciled. In a pod, with no `api_url`, it uses the service-account token and CA
and `KUBERNETES_SERVICE_HOST/PORT`.

`attach(fleet, pool, cfg, role=...)` wires a watcher to a running `Fleet`: add_external_worker
on Ready (with the role and bootstrap port), remove_worker on unready/deleted. A PD model
gets one watcher per worker group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sglfleet.config import KubernetesDiscoveryConfig

log = logging.getLogger("sglfleet.discovery")
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
BOOTSTRAP_ANNOTATIONS = ("sglfleet.io/bootstrap-port", "sglang.ai/bootstrap-port")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One Ready pod as a worker: its URL and, for prefill pods, the bootstrap port."""

    url: str
    bootstrap_port: int | None = None


Callback = Callable[[Endpoint], Awaitable[None]]


class DiscoveryError(Exception):
    """The Kubernetes API could not be reached or refused the request."""


class Gone(Exception):
    """410: the watch's resourceVersion is too old; list again."""


def bootstrap_port(pod: Mapping[str, Any], default: int | None) -> int | None:
    """The pod's bootstrap port annotation (first of BOOTSTRAP_ANNOTATIONS), else `default`."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    for key in BOOTSTRAP_ANNOTATIONS:
        value = str(annotations.get(key, "")).strip()
        if value.isdigit() and 0 < int(value) < 65536:
            return int(value)
        if value:
            log.warning("discovery: pod %s: annotation %s=%r is not a port; ignored",
                        (pod.get("metadata") or {}).get("name"), key, value)
    return default


def pod_endpoint(pod: Mapping[str, Any], cfg: KubernetesDiscoveryConfig) -> Endpoint | None:
    """The worker of a Ready pod (URL + bootstrap port); None while it is not a worker."""
    url = pod_url(pod, cfg.port)
    return None if url is None else Endpoint(url, bootstrap_port(pod, cfg.bootstrap_port))


def pod_url(pod: Mapping[str, Any], port: int) -> str | None:
    """The worker URL of a Ready, running, not-terminating pod; None otherwise."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return None
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not ready:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


def _order(e: Endpoint) -> tuple[str, int]:
    return e.url, e.bootstrap_port or 0


class PodWatcher:
    def __init__(self, cfg: KubernetesDiscoveryConfig, *, on_add: Callback, on_remove: Callback,
                 session: aiohttp.ClientSession | None = None, env: Mapping[str, str] | None = None,
                 sa_dir: Path | None = None, retry_s: float = 2.0, watch_timeout_s: int = 300) -> None:
        env = os.environ if env is None else env
        self.cfg = cfg
        self._on_add, self._on_remove = on_add, on_remove
        self._session, self._own_session = session, session is None
        self._sa_dir = SA_DIR if sa_dir is None else sa_dir
        self.retry_s, self.watch_timeout_s = retry_s, watch_timeout_s
        if cfg.api_url:
            self.api_url = cfg.api_url.rstrip("/")
        elif env.get("KUBERNETES_SERVICE_HOST"):
            host = env["KUBERNETES_SERVICE_HOST"]
            host = f"[{host}]" if ":" in host else host
            self.api_url = f"https://{host}:{env.get('KUBERNETES_SERVICE_PORT', '443')}"
        else:
            raise DiscoveryError("discovery.api_url is unset and KUBERNETES_SERVICE_HOST is not set "
                                 "(not running in a pod); set discovery.api_url")
        self.pods: dict[str, Endpoint | None] = {}  # pod name -> worker while ready
        self.workers: set[Endpoint] = set()
        self._task: asyncio.Task[None] | None = None

    # -- HTTP ---------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        token = self._sa_dir / "token"  # re-read: bound tokens rotate
        return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.is_file() else {}

    def _ssl(self) -> ssl.SSLContext | bool:
        ca = self._sa_dir / "ca.crt"
        return ssl.create_default_context(cafile=str(ca)) if ca.is_file() else True

    @property
    def _pods_url(self) -> str:
        return f"{self.api_url}/api/v1/namespaces/{self.cfg.namespace}/pods"

    async def _get(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def list_pods(self) -> str:
        """List, replace the pod table, reconcile; returns the list's resourceVersion."""
        session = await self._get()
        params = {"labelSelector": self.cfg.selector}
        async with session.get(self._pods_url, params=params, headers=self._headers(), ssl=self._ssl(),
                               timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status != 200:
                raise DiscoveryError(f"list pods: HTTP {resp.status}: {(await resp.text())[:200]}")
            body = await resp.json()
        self.pods = {p["metadata"]["name"]: pod_endpoint(p, self.cfg) for p in body.get("items") or []}
        await self._reconcile()
        return str(body.get("metadata", {}).get("resourceVersion", ""))

    async def watch(self, resource_version: str) -> str:
        """Apply watch events until the server ends the stream; returns the last resourceVersion."""
        session = await self._get()
        params = {"labelSelector": self.cfg.selector, "watch": "true", "allowWatchBookmarks": "true",
                  "resourceVersion": resource_version, "timeoutSeconds": str(self.watch_timeout_s)}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.watch_timeout_s + 30)
        async with session.get(self._pods_url, params=params, headers=self._headers(), ssl=self._ssl(),
                               timeout=timeout) as resp:
            if resp.status == 410:
                raise Gone()
            if resp.status != 200:
                raise DiscoveryError(f"watch pods: HTTP {resp.status}")
            async for raw in resp.content:
                if raw.strip():
                    resource_version = await self._apply(json.loads(raw)) or resource_version
        return resource_version

    async def _apply(self, event: Mapping[str, Any]) -> str | None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise DiscoveryError(f"watch error: {obj.get('message')}")
        meta = obj.get("metadata") or {}
        if kind in ("ADDED", "MODIFIED"):
            self.pods[meta["name"]] = pod_endpoint(obj, self.cfg)
        elif kind == "DELETED":
            self.pods.pop(meta["name"], None)
        if kind != "BOOKMARK":
            await self._reconcile()
        return meta.get("resourceVersion")

    async def _reconcile(self) -> None:
        # An endpoint whose bootstrap port changed is removed, then added again.
        want = {e for e in self.pods.values() if e}
        for e in sorted(self.workers - want, key=_order):
            self.workers.discard(e)
            log.info("discovery: worker %s gone (%s)", e.url, self.cfg.selector)
            await self._on_remove(e)
        for e in sorted(want - self.workers, key=_order):
            self.workers.add(e)
            log.info("discovery: worker %s ready (%s)", e.url, self.cfg.selector)
            await self._on_add(e)

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        """List + watch forever; any failure is logged and followed by a fresh list."""
        while True:
            try:
                rv = await self.list_pods()
                while True:
                    rv = await self.watch(rv)
            except Gone:
                log.info("discovery: resourceVersion expired, listing again")
            except (aiohttp.ClientError, TimeoutError, DiscoveryError, ValueError) as exc:
                log.warning("discovery: %s; retrying in %.1f s", exc, self.retry_s)
                await asyncio.sleep(self.retry_s)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"k8s-discovery-{self.cfg.selector}")
        return self._task

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._own_session and self._session:
            await self._session.close()


def attach(fleet: Any, pool: Any, cfg: KubernetesDiscoveryConfig, api_key: str | None = None,
           *, role: str | None = None, sa_dir: Path | None = None) -> PodWatcher:
    """Start a watcher that keeps `pool`'s workers (of `role`, default `cfg.role`) equal to the
    Ready pods (call from Fleet.start)."""
    by_endpoint: dict[Endpoint, Any] = {}
    role = role or cfg.role

    async def add(e: Endpoint) -> None:
        by_endpoint[e] = fleet.add_external_worker(pool, e.url, api_key, role=role, bootstrap_port=e.bootstrap_port)

    async def remove(e: Endpoint) -> None:
        worker = by_endpoint.pop(e, None)
        if worker is not None:
            await fleet.remove_worker(worker.id)

    watcher = PodWatcher(cfg, on_add=add, on_remove=remove, session=fleet.session, sa_dir=sa_dir)
    watcher.start()
    return watcher
