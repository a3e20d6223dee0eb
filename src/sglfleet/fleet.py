"""The running fleet: config -> model pools, workers, supervisors, health checkers, metrics.

Built by the app's lifespan; every component gets what it needs passed in from here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from sglfleet.config import FleetConfig, ModelConfig
from sglfleet.core.errors import UpstreamError
from sglfleet.core.exchange import Exchange, Verdict
from sglfleet.core.route import RouteContext
from sglfleet.core.worker import Worker
from sglfleet.engines.llamacpp import resolve_model_path
from sglfleet.engines.llamacpp_tokens import PromptTokenCounter
from sglfleet.engines.registry import get_engine
from sglfleet.metrics import Metrics, memory_gauges, registry_gauges
from sglfleet.routing.pd import PDPool
from sglfleet.routing.pool import ModelPool, Pool
from sglfleet.routing.registry import Registry
from sglfleet.routing.task_routes import TaskRouter
from sglfleet.supervisor.model import ModelSupervisor
from sglfleet.supervisor.orchestrator import MemoryOrchestrator
from sglfleet.telemetry import LiveStats
from sglfleet.upstream import http1
from sglfleet.upstream.client import make_session
from sglfleet.upstream.dispatch import Dispatcher
from sglfleet.upstream.health import HealthChecker, probe_worker
from sglfleet.upstream.heartbeat import Heartbeat
from sglfleet.upstream.pd_dispatch import PDDispatcher

log = logging.getLogger("sglfleet")


class Fleet:
    def __init__(self, cfg: FleetConfig) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.stats = LiveStats()
        self.registry = Registry()
        self.supervisors: dict[str, ModelSupervisor] = {}
        self.memory = MemoryOrchestrator(cfg.gateway.memory)
        self.checkers: dict[str, HealthChecker] = {}
        self.watchers: list[Any] = []  # Kubernetes discovery watchers
        self._counters: dict[Path, PromptTokenCounter] = {}
        self.started_at = time.time()
        self.exchanges: set[Exchange] = set()  # every request between admission and its last byte
        self.draining = False  # SIGTERM: admit nothing new (503), let the live exchanges finish
        self.heartbeats: dict[str, Heartbeat] = {}
        self._verified: dict[str, tuple[float, bool]] = {}  # worker id -> (when, known-good probe ok)
        self._session: aiohttp.ClientSession | None = None  # control plane: health, loads, sleep
        self._client: http1.Client | None = None  # generation requests
        self._dispatcher: Dispatcher | None = None
        self._pd_dispatcher: PDDispatcher | None = None
        self.virtual: dict[str, TaskRouter] = {v.name.casefold(): TaskRouter(v, self.ask_model) for v in cfg.routes}
        self._tick: asyncio.Task[None] | None = None
        self._deadlines: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop it serves on, once started
        self.metrics.add_live_collector(lambda: registry_gauges(self.registry))
        self.metrics.add_live_collector(lambda: memory_gauges(self.memory, cfg.gateway.memory))

    def current_task(self) -> asyncio.Task[Any] | None:
        """asyncio.current_task(), without its running-loop lookup (a getpid() syscall per call
        on Python 3.11) once the fleet knows its loop."""
        return asyncio.current_task(self.loop) or asyncio.current_task()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "fleet not started"
        return self._session

    @property
    def dispatcher(self) -> Dispatcher:
        assert self._dispatcher is not None, "fleet not started"
        return self._dispatcher

    @property
    def pd_dispatcher(self) -> PDDispatcher:
        assert self._pd_dispatcher is not None, "fleet not started"
        return self._pd_dispatcher

    async def start(self, *, wait: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self._session = make_session()
        self._client = http1.Client(connect_timeout_s=self.cfg.gateway.timeouts.connect_s)
        self._dispatcher = Dispatcher(self._client, self.cfg.gateway, self.metrics, verify=self.verify_worker)
        self._pd_dispatcher = PDDispatcher(self._client, self.cfg.gateway, self.metrics)
        for m in self.cfg.models:
            self.add_model(m)
        for sup in self.supervisors.values():
            sup.start()
        self._tick = asyncio.create_task(self._housekeeping(), name="fleet-housekeeping")
        self._deadlines = asyncio.create_task(self._deadline_ticker(), name="fleet-deadlines")
        if wait and self.supervisors:
            await asyncio.gather(*(s.wait_ready(self.cfg.gateway.startup_timeout_s)
                                   for s in self.supervisors.values()))

    def add_model(self, m: ModelConfig) -> Pool:
        timeouts = self.cfg.gateway.timeouts
        pool: Pool = PDPool(m, timeouts=timeouts) if m.disaggregated else ModelPool(m, timeouts=timeouts)
        self.registry.add(pool)
        if m.prefill is not None and m.decode is not None:
            for role, group in (("prefill", m.prefill), ("decode", m.decode)):
                if group.discovery is not None:
                    from sglfleet.deploy.discovery import attach

                    self.watchers.append(attach(self, pool, group.discovery, m.api_key, role=role))
                for i, url in enumerate(group.urls):
                    port = group.bootstrap_ports[i] if group.bootstrap_ports else None
                    self.add_external_worker(pool, url, m.api_key, role=role, bootstrap_port=port)
        elif m.managed:
            sup = self.supervisors[m.name] = ModelSupervisor(
                pool, pool.engine, session=self.session,
                log_dir=self.cfg.gateway.log_path, breaker_cfg=self.cfg.gateway.breaker,
                model_dir=Path(self.cfg.gateway.model_dir).expanduser(), orchestrator=self.memory)
            for r in sup.replicas:
                self._start_heartbeat(pool, r.worker)
        elif m.discovery is not None:
            from sglfleet.deploy.discovery import attach

            self.watchers.append(attach(self, pool, m.discovery, m.api_key))
        else:
            for url in m.urls:
                self.add_external_worker(pool, url, m.api_key)
        return pool

    def add_external_worker(self, pool: Pool, url: str, api_key: str | None, *, role: str = "both",
                            bootstrap_port: int | None = None) -> Worker:
        """Register a worker sglfleet does not launch. Raises ValueError for a URL with both
        credentials and an api_key."""
        w = Worker.create(pool.name, url, self.cfg.gateway.breaker, api_key=api_key, role=role,
                          bootstrap_port=bootstrap_port)
        pool.add(w)
        checker = HealthChecker(self.session, w, get_engine("external").probe, self.cfg.gateway.health,
                                pool.cfg.served_model)
        self.checkers[w.id] = checker
        checker.start()
        self._start_heartbeat(pool, w)
        return w

    def _start_heartbeat(self, pool: Pool, w: Worker) -> None:
        hb = self.heartbeats[w.id] = Heartbeat(self.session, w, pool.engine.heartbeat_path, self.cfg.gateway.heartbeat)
        hb.start()

    async def verify_worker(self, w: Worker) -> bool:
        """Does the worker answer a known-good request (a 1-token generation)? Decides whether a
        lone worker's 5xx followed the request; cached a few seconds so a burst of bad requests
        costs one probe."""
        now = time.monotonic()
        cached = self._verified.get(w.id)
        if cached is not None and now - cached[0] < 5.0:
            return cached[1]
        pool = self.registry.resolve(w.model)
        res = await probe_worker(self.session, w.url, get_engine("external").probe, model_id=pool.cfg.served_model,
                                 auth=w.auth, timeout_s=self.cfg.gateway.health.timeout_s * 2, generate=True)
        self._verified[w.id] = (time.monotonic(), res.ok)
        return res.ok

    async def remove_worker(self, worker_id: str) -> Worker | None:
        for pool in self.registry:
            for w in pool.workers:
                if w.id == worker_id and not w.managed:
                    pool.remove(w)
                    for task in (self.checkers.pop(w.id, None), self.heartbeats.pop(w.id, None)):
                        if task is not None:
                            await task.stop()
                    return w
        return None

    def prompt_counter(self, pool: Pool) -> PromptTokenCounter | None:
        """Gateway-side prompt token counting for engines whose streams carry no usage."""
        if pool.engine.usage_in_stream:
            return None
        path = resolve_model_path(pool.cfg.resolved_model_path)
        counter = self._counters.get(path)
        if counter is None:
            counter = self._counters[path] = PromptTokenCounter(path)
        return counter

    def find_worker(self, worker_id: str) -> Worker | None:
        return next((w for p in self.registry for w in p.workers if w.id == worker_id), None)

    async def _deadline_ticker(self, interval_s: float = 0.5) -> None:
        """Expire the attempts whose first-byte or stall deadline has passed (core/exchange.py):
        one loop for every request instead of a timer per read."""
        while True:
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            for pool in self.registry:
                for w in pool.workers:
                    for attempt in list(w.attempts):
                        attempt.check_deadline(now)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for sup in self.supervisors.values():
                sup.maybe_cool_down()

    async def stop(self) -> None:
        for task in (self._tick, self._deadlines):
            if task:
                task.cancel()
        await asyncio.gather(*(w.stop() for w in self.watchers), return_exceptions=True)
        await asyncio.gather(*(c.stop() for c in self.checkers.values()), return_exceptions=True)
        await asyncio.gather(*(h.stop() for h in self.heartbeats.values()), return_exceptions=True)
        await asyncio.gather(*(s.stop("gateway shutdown") for s in self.supervisors.values()),
                             return_exceptions=True)
        if self._client:
            await self._client.close()
        if self._session:
            await self._session.close()

    def kill_engines_now(self) -> None:
        """Last resort on abrupt exit: SIGKILL every engine group (the guards also do this)."""
        for sup in self.supervisors.values():
            for r in sup.replicas:
                r.kill_now()

    async def ask_model(self, model: str, messages: list[dict[str, Any]], timeout_s: float,
                        labels: list[str] | None = None) -> str:
        """One short non-streaming chat completion on a served model (the task classifier).
        With `labels`, the output is constrained to `{"label": <one of them>}` through the
        engine's structured output (llama.cpp: json_object + schema; others: json_schema)."""
        pool = self.registry.resolve(model)
        req: dict[str, Any] = {"model": pool.cfg.served_model, "messages": messages, "max_tokens": 8,
                               "temperature": 0}
        if labels:
            schema = {"type": "object", "properties": {"label": {"type": "string", "enum": labels}},
                      "required": ["label"]}
            req["max_tokens"] = 32
            req["response_format"] = (
                {"type": "json_object", "schema": schema} if pool.engine.schema_in_json_object
                else {"type": "json_schema", "json_schema": {"name": "route", "schema": schema}})
        body = orjson.dumps(req)

        async def call() -> str:
            await pool.ensure_ready()
            assert isinstance(pool, ModelPool)
            exchange = Exchange("classifier", pool.name)
            verdict = Verdict.CLIENT_GONE  # timeout/cancel or a broken body: no verdict
            try:
                opened = await self.dispatcher.open(exchange, pool, "/v1/chat/completions", body, RouteContext(),
                                                    stream=False)
                data = orjson.loads(await opened.response.read())
                opened.attempt.complete = True
                verdict = Verdict.SUCCESS
            finally:
                exchange.close(verdict)
            content = data["choices"][0]["message"].get("content")
            if not isinstance(content, str):
                raise UpstreamError("classifier answered without text")
            return content

        return await asyncio.wait_for(call(), timeout_s)

    def ready_summary(self) -> dict[str, Any]:
        models = {}
        for pool in self.registry:
            models[pool.name] = {
                "state": pool.status,
                "workers": len(pool.workers),
                "ready_workers": sum(1 for w in pool.workers if w.eligible),
                "ready": pool.has_eligible(),
            }
        return {"ready": any(m["ready"] for m in models.values()), "models": models}
