"""Host many simulated workers in one event loop: one aiohttp app and TCP site each.

`run_sim_workers` is the in-process API for tests; `serve` is what `sglfleet sim` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from sglfleet.sim.config import SimConfig
from sglfleet.sim.pd import BootstrapHub
from sglfleet.sim.server import SimWorker

DEFAULT_HOST = "127.0.0.1"
SHUTDOWN_TIMEOUT_S = 2.0  # in-flight requests (even hung ones) get this long at shutdown


@dataclass(frozen=True)
class SimFleet:
    """Workers started by `run_sim_workers`, in port order."""

    workers: list[SimWorker]
    urls: list[str]
    hub: BootstrapHub

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def ports(self) -> list[int]:
        return [w.port for w in self.workers if w.port is not None]


def _url(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def _start_site(runner: web.AppRunner, host: str, port: int) -> int:
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return int(runner.addresses[-1][1])


@contextlib.asynccontextmanager
async def run_sim_workers(
    config: SimConfig | None = None,
    *,
    n: int = 1,
    base_port: int | None = None,
    host: str = DEFAULT_HOST,
    hub: BootstrapHub | None = None,
) -> AsyncIterator[SimFleet]:
    """Start `n` workers on `base_port`, `base_port + 1`, ... (OS-chosen ports when None).

    Pass the same `hub` to two calls to pair prefill and decode fleets in-process without
    HTTP polling (polling works too). Yields a `SimFleet`; stops everything on exit.
    """
    config = config or SimConfig()
    hub = hub if hub is not None else BootstrapHub()
    runners: list[web.AppRunner] = []
    workers: list[SimWorker] = []
    try:
        for i in range(n):
            worker = SimWorker(config, index=i, hub=hub, host=host)
            runner = web.AppRunner(
                worker.app,
                handler_cancellation=True,
                access_log=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            )
            await runner.setup()
            runners.append(runner)
            worker.port = await _start_site(runner, host, base_port + i if base_port else 0)
            worker.bootstrap_port = worker.port
            if config.bootstrap_port is not None:
                worker.bootstrap_port = await _start_site(runner, host, config.bootstrap_port + i)
            if config.role == "prefill":
                hub.ports.update({worker.port, worker.bootstrap_port})
            workers.append(worker)
        yield SimFleet(workers, [_url(host, w.port or 0) for w in workers], hub)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def serve(config: SimConfig, *, n: int, base_port: int, host: str) -> None:
    """Run until SIGINT/SIGTERM; a second signal exits at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            os._exit(130)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    async with run_sim_workers(config, n=n, base_port=base_port, host=host) as fleet:
        mode = "fast" if config.fast else ("fixed" if config.fixed_timing else "simulated")
        print(
            f"sglfleet sim: {n} worker(s), role {config.role}, model {config.model_name!r}, "
            f"{mode} timing",
            flush=True,
        )
        for worker, url in zip(fleet.workers, fleet.urls, strict=True):
            extra = ""
            if config.bootstrap_port is not None:
                extra = f"  (bootstrap port {worker.bootstrap_port})"
            print(url + extra, flush=True)
        await stop.wait()
        print("sglfleet sim: stopping", file=sys.stderr, flush=True)


def run_blocking(config: SimConfig, *, n: int, base_port: int, host: str) -> None:
    """Entry point for the CLI: uvloop when installed, plain asyncio otherwise."""
    coro = serve(config, n=n, base_port=base_port, host=host)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
