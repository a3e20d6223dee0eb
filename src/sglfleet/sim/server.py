"""One simulated worker: its engine, metrics, faults and aiohttp application.

Routes follow SGLang's HTTP server (generation routes live in `generation.py`); the
`/sim/*` routes are the simulator's own: state for tests, faults at run time, and the
PD bootstrap room lookup. `/sim/*` is never affected by faults.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from sglfleet.sim import embeddings, generation
from sglfleet.sim.config import SimConfig
from sglfleet.sim.engine import Engine
from sglfleet.sim.fast import PieceTable
from sglfleet.sim.faults import FaultState, hang_forever
from sglfleet.sim.kv_events import KvEventPublisher, KvEventsConfig
from sglfleet.sim.memory import MemorySaver
from sglfleet.sim.metrics import SimMetrics
from sglfleet.sim.pd import BootstrapHub
from sglfleet.sim.protocol import BadRequest, error_response, read_json
from sglfleet.sim.tokenizer import OutputSampler

SIM_VERSION = "0.5.0-sglfleet-sim"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


class SimWorker:
    def __init__(
        self,
        config: SimConfig,
        *,
        index: int = 0,
        hub: BootstrapHub | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.config = config
        self.index = index
        self.metrics = SimMetrics(config.model_name, config.context_len)
        self.kv_events: KvEventsConfig | None = None
        self.publisher: KvEventPublisher | None = None
        if config.kv_events_config is not None:
            self.kv_events = KvEventsConfig.parse(config.kv_events_config).for_worker(index, host)
        self.engine = Engine(config, self.metrics, self._publish if self.kv_events else None)
        self.faults = FaultState(config.faults, seed=config.seed + index)
        self.hub = hub if hub is not None else BootstrapHub()
        self.fast_table = PieceTable(config.seed)
        self.fast_sampler = OutputSampler(config.seed, [])
        self.memory = MemorySaver(config.memory_mb, config.seconds(config.release_ms),
                                  config.seconds(config.resume_ms))
        self.port: int | None = None  # set once bound
        self.bootstrap_port: int | None = None
        self.stopping = False
        self.started = time.time()
        self._session: aiohttp.ClientSession | None = None
        self.app = self._build_app()

    def session(self) -> aiohttp.ClientSession:
        """HTTP client for polling remote prefill workers (PD decode role)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _publish(self, events: list[Any]) -> None:
        if self.publisher is not None:
            self.publisher.publish(events)

    async def _on_startup(self, _app: web.Application) -> None:
        if self.kv_events is not None:
            self.publisher = KvEventPublisher(self.kv_events)
            self.publisher.start()
        self.engine.start()

    async def _on_shutdown(self, _app: web.Application) -> None:
        self.stopping = True
        await self.engine.stop()
        if self.publisher is not None:
            await self.publisher.close()
        if self._session is not None:
            await self._session.close()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._hang_middleware], client_max_size=64 * 2**20)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        add = app.router.add_route
        add("POST", "/v1/chat/completions", self.chat)
        add("POST", "/v1/completions", self.completion)
        add("POST", "/v1/embeddings", self.embeddings)
        add("POST", "/generate", self.generate)
        add("PUT", "/generate", self.generate)
        add("GET", "/v1/models", self.models)
        add("GET", "/v1/models/{model}", self.model_card)
        add("GET", "/health", self.health)
        add("GET", "/health_generate", self.health)
        for path in ("/model_info", "/get_model_info"):
            add("GET", path, self.model_info)
        for path in ("/server_info", "/get_server_info"):
            add("GET", path, self.server_info)
        add("GET", "/v1/loads", self.loads)
        add("GET", "/get_load", self.get_load)
        add("GET", "/metrics", self.metrics_route)
        add("GET", "/flush_cache", self.flush_cache)
        add("POST", "/flush_cache", self.flush_cache)
        add("POST", "/abort_request", self.abort_request)
        for method in ("GET", "POST"):
            add(method, "/release_memory_occupation", self.memory.release)
            add(method, "/resume_memory_occupation", self.memory.resume)
        add("GET", "/sim/state", self.state)
        add("POST", "/sim/faults", self.set_faults)
        add("GET", "/sim/bootstrap/{room}", self.bootstrap_room)
        return app

    @web.middleware
    async def _hang_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.faults.config.hang and not request.path.startswith("/sim/"):
            await hang_forever()
        return await handler(request)

    # -- SGLang routes -----------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await generation.handle(self, request, "chat")

    async def completion(self, request: web.Request) -> web.StreamResponse:
        return await generation.handle(self, request, "completion")

    async def generate(self, request: web.Request) -> web.StreamResponse:
        return await generation.handle(self, request, "generate")

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await embeddings.handle(self, request)

    def _card(self) -> dict[str, Any]:
        name = self.config.model_name
        return {
            "id": name,
            "object": "model",
            "created": int(self.started),
            "owned_by": "sglang",
            "root": name,
            "parent": None,
            "max_model_len": self.config.context_len,
        }

    async def models(self, _request: web.Request) -> web.Response:
        return _json({"object": "list", "data": [self._card()]})

    async def model_card(self, request: web.Request) -> web.Response:
        if request.match_info["model"] != self.config.model_name:
            return error_response(404, f"The model '{request.match_info['model']}' does not exist")
        return _json(self._card())

    async def health(self, _request: web.Request) -> web.Response:
        if self.stopping or not self.faults.healthy() or self.memory.asleep:
            return web.Response(status=503)
        return web.Response(status=200)

    async def model_info(self, _request: web.Request) -> web.Response:
        name = self.config.model_name
        return _json(
            {
                "model_path": name,
                "tokenizer_path": name,
                "is_generation": True,
                "preferred_sampling_params": None,
                "weight_version": "default",
                "has_image_understanding": False,
                "has_audio_understanding": False,
                "model_type": "sim",
                "architectures": ["SimForCausalLM"],
            }
        )

    async def server_info(self, _request: web.Request) -> web.Response:
        cfg = self.config
        snap = self.engine.snapshot()
        mode = "null" if cfg.role == "both" else cfg.role
        return _json(
            {
                "model_path": cfg.model_name,
                "served_model_name": cfg.model_name,
                "host": "127.0.0.1",
                "port": self.port,
                "tp_size": 1,
                "dp_size": 1,
                "max_running_requests": cfg.max_running,
                "max_total_num_tokens": cfg.cache_tokens,
                "context_length": cfg.context_len,
                "chunked_prefill_size": cfg.max_prefill_tokens,
                "page_size": cfg.page_size,
                "kv_events_config": self.kv_events.to_json() if self.kv_events else None,
                "disaggregation_mode": mode,
                "disaggregation_bootstrap_port": self.bootstrap_port,
                "random_seed": cfg.seed,
                "enable_metrics": True,
                "internal_states": [
                    {"last_gen_throughput": snap.gen_throughput, "avg_spec_accept_length": None}
                ],
                "version": SIM_VERSION,
                "sim": True,
            }
        )

    def _load(self) -> dict[str, Any]:
        snap = self.engine.snapshot(self.hub.waiting)
        return {
            "dp_rank": 0,
            "num_running_reqs": snap.num_running_reqs,
            "num_waiting_reqs": snap.num_queue_reqs,
            "num_used_tokens": snap.num_used_tokens,
            "num_total_tokens": snap.max_total_num_tokens,
            "max_total_num_tokens": snap.max_total_num_tokens,
            "max_running_requests": self.config.max_running,
            "token_usage": snap.token_usage,
            "gen_throughput": snap.gen_throughput,
            "cache_hit_rate": snap.cache_hit_rate,
        }

    async def loads(self, _request: web.Request) -> web.Response:
        return _json({"timestamp": time.time(), "version": SIM_VERSION, "loads": [self._load()]})

    async def get_load(self, _request: web.Request) -> web.Response:
        load = self._load()
        return _json(
            [
                {
                    "dp_rank": 0,
                    "num_reqs": load["num_running_reqs"],
                    "num_waiting_reqs": load["num_waiting_reqs"],
                    "num_tokens": load["num_used_tokens"],
                    "num_pending_tokens": 0,
                    "ts_tic": time.time(),
                }
            ]
        )

    async def metrics_route(self, _request: web.Request) -> web.Response:
        body = self.metrics.render(self.engine.snapshot(self.hub.waiting))
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    async def flush_cache(self, request: web.Request) -> web.Response:
        timeout = float(request.query.get("timeout", 0) or 0)
        deadline = time.monotonic() + timeout
        while not self.engine.flush():
            if time.monotonic() >= deadline:
                return web.Response(
                    status=400,
                    text=(
                        "Cache flush failed. There are running or waiting requests; the operation "
                        "will not be performed.\n"
                    ),
                )
            await asyncio.sleep(0.01)
        return web.Response(text="Cache flushed.\n")

    async def abort_request(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except BadRequest as exc:
            return error_response(400, str(exc))
        if body.get("abort_all"):
            self.engine.abort_all()
        elif isinstance(body.get("rid"), str):
            self.engine.abort_rid(body["rid"])
        return web.Response(status=200)

    # -- /sim routes ---------------------------------------------------------------------
    async def state(self, _request: web.Request) -> web.Response:
        eng, cfg = self.engine, self.config
        return _json(
            {
                "index": self.index,
                "port": self.port,
                "bootstrap_port": self.bootstrap_port,
                "role": cfg.role,
                "model_name": cfg.model_name,
                "fast": cfg.fast,
                "load": self._load(),
                "cache_tokens": eng.cache.total_tokens,
                "evictable_tokens": eng.cache.evictable_tokens,
                "reserved_tokens": eng.reserved_total,
                "cache_nodes": eng.cache.node_count(),
                "steps": eng.steps,
                "generated_tokens": eng.generated_tokens_total,
                "prompt_tokens": eng.prompt_tokens_total,
                "cached_tokens": eng.cached_tokens_total,
                "rids": [r.rid for r in [*eng.waiting, *eng.running]],
                "faults": self.faults.config.as_dict(),
                "healthy": self.faults.healthy(),
                "bootstrap_waiting": self.hub.waiting,
                "kv_events": self.publisher.describe() if self.publisher else None,
            }
        )

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
            if body.pop("reset", False):
                new = self.config.faults.updated(body)
            else:
                new = self.faults.config.updated(body)
        except (BadRequest, ValueError, TypeError) as exc:
            return error_response(400, str(exc))
        self.faults.set(new)
        return _json({"faults": new.as_dict()})

    async def bootstrap_room(self, request: web.Request) -> web.Response:
        try:
            room = int(request.match_info["room"])
        except ValueError:
            return error_response(400, "room must be an integer")
        entry = self.hub.lookup(room)
        if entry is None:
            return _json(
                {
                    "room": room,
                    "state": "unknown",
                    "prompt_tokens": 0,
                    "cached_tokens": 0,
                    "reason": "",
                }
            )
        return _json(entry.as_dict(room))
