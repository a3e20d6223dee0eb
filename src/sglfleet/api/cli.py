"""`sglfleet serve`, `sglfleet stop`, `sglfleet status`."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import typer

from sglfleet.api import access_log
from sglfleet.api.sockets import listen_socket
from sglfleet.config import ConfigError, FleetConfig, GatewayConfig, load_config

_GW = GatewayConfig()
GC_GEN0_THRESHOLD = 10_000  # net allocations between young-generation collections (default 700)


def pid_file(port: int) -> Path:
    return Path("~/.cache/sglfleet").expanduser() / f"serve-{port}.pid"


def setup_logging(level: str) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(show_path=False, rich_tracebacks=False, log_time_format="%H:%M:%S")
    logging.basicConfig(level=level.upper(), format="%(name)s: %(message)s", handlers=[handler], force=True)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # One access line per request goes through a plain, batching handler: RichHandler costs
    # ~1.9 ms of CPU per line (measured), more than everything else the gateway does for a request.
    access_log.install(sys.stderr)
    # what no line shows, not looked up per record (the logging docs' "Optimization" knobs):
    # the caller's file and line (a stack walk), thread, process and asyncio task names
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]


def load_or_exit(path: Path | None, **overrides: Any) -> FleetConfig:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    gw = {k: v for k, v in overrides.items() if v is not None}
    return cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update=gw)}) if gw else cfg


async def _show_progress(fleet: Any, url: str) -> None:
    """Rich progress while engines load, then the endpoint URL."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    console = Console(stderr=True)
    sups = list(fleet.supervisors.values())

    def table() -> Table:
        t = Table(box=None, show_header=False)
        for s in sups:
            for r in s.snapshot()["replicas"]:
                el = f"{r['elapsed_s'] or 0:5.1f}s"
                detail = r["phase_detail"] or (r["log_tail"][-1] if r.get("log_tail") else "")
                t.add_row(f"[bold]{s.pool.name}[/]/{r['replica']}", r["state"], r["phase"], el, detail[:60])
        return t

    with Live(table(), console=console, refresh_per_second=4, transient=True) as live:
        while any(s.loading for s in sups):
            live.update(table())
            await asyncio.sleep(0.25)
    for s in sups:
        console.print(f"  {s.pool.name}: [bold]{s.state.value}[/]"
                      + (f" — {s.pool.failure}" if s.pool.failure else "")
                      + f"  (log: {s.replicas[0].log_path})")
    names = [p.name for p in fleet.registry]
    console.print(f"[green]sglfleet serving[/] {url}/v1  (models: {', '.join(names)})")
    if names:
        console.print("  try:  " + try_command(url, names[0], keyed=bool(fleet.cfg.gateway.api_keys)), soft_wrap=True,
                      highlight=False, markup=False)


def try_command(url: str, model: str, *, keyed: bool) -> str:
    """A one-line request a newcomer can paste once the gateway is ready."""
    auth = " -H \"authorization: Bearer $SGLFLEET_API_KEY\"" if keyed else ""
    body = '{"model": "%s", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 32}' % model
    return f"curl -s {url}/v1/chat/completions -H 'content-type: application/json'{auth} -d '{body}'"


def _make_server(config: Any, fleet: Any = None, grace_s: float = 0.0) -> Any:
    import contextlib

    import uvicorn

    from sglfleet.api.shutdown import drain

    class Server(uvicorn.Server):
        """Graceful shutdown (api/shutdown.py): the first SIGTERM/SIGINT drains the fleet for up
        to `grace_s`, then stops uvicorn; a second one stops at once. uvicorn re-raises a
        captured SIGTERM after shutdown, which kills the process before our cleanup runs; after
        a graceful stop we exit normally instead."""

        draining = False

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if fleet is None or self.draining or not self.started:
                super().handle_exit(sig, frame)
                return
            logging.getLogger("sglfleet").info("%s: draining (a second signal stops at once)",
                                               signal.Signals(sig).name)
            self.draining = True
            loop = asyncio.get_event_loop()  # (a signal handler: runs between two steps of the loop)
            loop.call_soon_threadsafe(lambda: loop.create_task(self._drain(sig)))

        async def _drain(self, sig: int) -> None:
            await drain(fleet, grace_s)
            super().handle_exit(sig, None)

    return Server(config)


def serve(
    config: Path = typer.Option(None, "--config", "-c", help="Fleet file (YAML). Default: the embedded model."),
    host: str = typer.Option(None, help=f"Bind address [default: {_GW.host}]"),
    port: int = typer.Option(None, help=f"Port [default: {_GW.port}]"),
    log_level: str = typer.Option("info", help="debug|info|warning|error"),
    workers: int = typer.Option(1, min=1, help="Gateway processes sharing the port (SO_REUSEPORT); "
                                                "> 1 only for fleets of external workers."),
    reuse_port: bool = typer.Option(False, "--reuse-port", hidden=True,
                                    help="Bind with SO_REUSEPORT (set on the processes of --workers N)."),
) -> None:
    """Serve one OpenAI-compatible endpoint in front of the fleet."""
    cfg = load_or_exit(config, host=host, port=port)
    if workers > 1:
        _check_multiprocess(cfg)
        raise typer.Exit(serve_multiprocess(config, cfg, workers, log_level))
    raise typer.Exit(run_gateway(cfg, log_level, reuse_port=reuse_port))


def _listen_sockets(cfg: FleetConfig, reuse_port: bool) -> list[socket.socket]:
    """Bind before anything starts, so a busy port fails fast with a clear message and no
    engine is launched; plus `gateway.ollama_port` (same app, one lifespan) when set."""
    gw = cfg.gateway
    ports = [gw.port] + ([gw.ollama_port] if gw.ollama_port else [])
    return [listen_socket(gw.host, port, reuse_port=reuse_port) for port in ports]


def run_gateway(cfg: FleetConfig, log_level: str = "info", *, reuse_port: bool = False) -> int:
    """Run the gateway for `cfg` until SIGINT/SIGTERM; 0 after a clean stop, 1 if it never
    started. Also used by `sglfleet launch` to supervise one SGLang worker."""
    import uvicorn

    from sglfleet.api.app import create_app
    from sglfleet.fleet import Fleet

    setup_logging(log_level)
    gw = cfg.gateway
    fleet = Fleet(cfg)
    app = create_app(cfg, fleet=fleet, wait_ready=False)
    from sglfleet.api.server_limits import uvicorn_options

    # proxy_headers off: nothing reads X-Forwarded-For, and its middleware wraps every request
    uv = uvicorn.Config(app, host=gw.host, port=gw.port, loop="uvloop", **uvicorn_options(gw.limits),
                        log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5,
                        proxy_headers=False, server_header=False)
    server = _make_server(uv, fleet, gw.shutdown_grace_s)
    try:
        sockets = _listen_sockets(cfg, reuse_port)
    except OSError as exc:
        typer.echo(f"sglfleet: cannot listen on {gw.host}: {exc.strerror or exc}", err=True)
        return 1
    pf = pid_file(gw.port)
    url = f"http://{gw.host}:{gw.port}"
    if not reuse_port:  # the processes of --workers N leave the pid file to their parent
        pf.parent.mkdir(parents=True, exist_ok=True)
        pf.write_text(str(os.getpid()))
        typer.echo(f"sglfleet: engine logs in {gw.log_path}", err=True)
        if gw.ollama_port:
            typer.echo(f"sglfleet: Ollama API also on http://{gw.host}:{gw.ollama_port}", err=True)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=sockets))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            # the start-up heap (FastAPI, pydantic, the config, ~100k objects) is kept out of
            # the collector from now on: a full collection walked it in ~80 ms, mid-traffic
            gc.collect()
            gc.freeze()
            # a request leaves no reference cycle (docs/performance.md), so the young
            # generation is collected every 10,000 net allocations instead of 700: the
            # collections that scanned the requests in flight every few requests go
            gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)
        if server.started and not reuse_port:
            await _show_progress(fleet, url)
        try:
            await task
        except SystemExit:  # uvicorn's own start-up failure; it has logged why
            pass

    try:
        run_loop(main())
    finally:
        fleet.kill_engines_now()  # no-op after a clean shutdown; guards cover abrupt exits
        if not reuse_port:
            pf.unlink(missing_ok=True)
    return 0 if server.started else 1


def run_loop(main: Any) -> None:
    """Run the gateway on uvloop (uvicorn's `loop="uvloop"` applies only when uvicorn creates the
    loop itself; we run `Server.serve` in our own): its transports and selector are in C, where
    the asyncio default spends about a quarter of the gateway's CPU in socket writes."""
    try:
        import uvloop
    except ImportError:  # a platform without uvloop (it ships with uvicorn[standard])
        asyncio.run(main)
        return
    uvloop.run(main)


def _check_multiprocess(cfg: FleetConfig) -> None:
    """Each gateway process starts what its fleet file manages, so a managed engine would be
    launched N times: --workers > 1 is for fleets of external workers only."""
    managed = [m.name for m in cfg.models if m.managed]
    problems = []
    if managed:
        problems.append(f"{', '.join(managed)} {'is' if len(managed) == 1 else 'are'} launched by sglfleet "
                        "(managed engine) and every gateway process would launch its own copy; run the engines "
                        "under one `sglfleet serve` and point a fleet file of `engine: external` urls at them")
    if cfg.gateway.port == 0:
        problems.append("port 0 would give each process a different port; choose a fixed port")
    if not hasattr(socket, "SO_REUSEPORT"):
        problems.append("this platform has no SO_REUSEPORT")
    if problems:
        typer.echo("sglfleet serve --workers: " + "; ".join(problems), err=True)
        raise typer.Exit(2)


def serve_multiprocess(config: Path | None, cfg: FleetConfig, workers: int, log_level: str) -> int:
    """Run `workers` gateway processes on one port (SO_REUSEPORT) and keep them alive.

    Each process is a whole gateway with its own fleet view (health, breakers, in-flight
    counts), prefix trees, limiters and metrics registry (docs/performance.md). This parent
    only supervises: it restarts a process that dies (at most once a second) and passes
    SIGTERM/SIGINT on, then waits for a clean exit (30 s, then SIGKILL).
    """
    import subprocess

    gw = cfg.gateway
    argv = [sys.executable, "-m", "sglfleet.cli", "serve", "--host", gw.host, "--port", str(gw.port),
            "--log-level", log_level, "--reuse-port"]
    if config is not None:
        argv += ["--config", str(config)]
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    pf = pid_file(gw.port)
    pf.parent.mkdir(parents=True, exist_ok=True)
    pf.write_text(str(os.getpid()))
    original = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    started_at: list[float] = []
    try:
        for _ in range(workers):
            procs.append(subprocess.Popen(argv))
            started_at.append(time.monotonic())
        typer.echo(f"sglfleet serving http://{gw.host}:{gw.port}/v1 with {workers} processes "
                   f"(pids {', '.join(str(p.pid) for p in procs)})", err=True)
        while not stopping:
            time.sleep(0.2)
            for i, p in enumerate(procs):
                if p.poll() is None or stopping:
                    continue
                if time.monotonic() - started_at[i] < 1.0:
                    time.sleep(1.0)  # crash-loop guard
                typer.echo(f"sglfleet: gateway process {p.pid} exited ({p.returncode}); restarting it", err=True)
                procs[i] = subprocess.Popen(argv)
                started_at[i] = time.monotonic()
        deadline = time.monotonic() + 30
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    finally:
        for sig, handler in original.items():
            signal.signal(sig, handler)
        for p in procs:
            if p.poll() is None:
                p.kill()
        pf.unlink(missing_ok=True)
    return 0


def stop(port: int = typer.Option(_GW.port, help="Port of the running `sglfleet serve`."),
         timeout: float = typer.Option(30.0, help="Seconds to wait for a clean exit.")) -> None:
    """Stop a running `sglfleet serve` cleanly (its engines too)."""
    pf = pid_file(port)
    try:
        pid = int(pf.read_text())
    except (OSError, ValueError):
        typer.echo(f"no sglfleet serve on port {port} (no pid file {pf})", err=True)
        raise typer.Exit(1) from None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pf.unlink(missing_ok=True)
        typer.echo(f"sglfleet (pid {pid}) was not running; removed stale pid file", err=True)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(pid):
            typer.echo(f"stopped sglfleet (pid {pid})")
            return
        time.sleep(0.2)
    typer.echo(f"sglfleet (pid {pid}) still running after {timeout:g}s", err=True)
    raise typer.Exit(1)


def restart(model: str = typer.Argument(..., help="Model name"),
            url: str = typer.Option(f"http://{_GW.host}:{_GW.port}", help="Gateway URL"),
            admin_key: str = typer.Option(None, envvar="SGLFLEET_ADMIN_KEY", help="Admin key"),
            drain_timeout: float = typer.Option(60.0, help="Seconds a replica may take to finish its requests."),
            ) -> None:
    """Rolling restart of a model's replicas, one at a time, without failing a request."""
    import httpx

    headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}
    try:
        r = httpx.post(f"{url.rstrip('/')}/admin/models/{model}/restart", headers=headers,
                       params={"drain_timeout_s": drain_timeout}, timeout=None)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the gateway at {url}: {exc.__class__.__name__}", err=True)
        raise typer.Exit(1) from None
    try:
        data = r.json()
    except ValueError:
        data = {}
    if r.status_code != 200:
        err = data.get("error")
        msg = err.get("message") if isinstance(err, dict) else data.get("error") or r.text[:200]
        typer.echo(f"restart of {model!r} failed (HTTP {r.status_code}): {msg}", err=True)
        raise typer.Exit(1)
    for rep in data.get("restarted", []):
        typer.echo(f"replica {rep['replica']}: drained in {rep['drain_s']}s, ready in {rep['restart_s']}s"
                   + (f", {rep['cut_requests']} request(s) cut" if rep["cut_requests"] else ""))
    typer.echo(f"restarted {model!r}: {data.get('state', '?')}")


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # a zombie has exited
    except psutil.NoSuchProcess:
        return False


def status(url: str = typer.Option(f"http://{_GW.host}:{_GW.port}", help="Gateway URL"),
           admin_key: str = typer.Option(None, envvar="SGLFLEET_ADMIN_KEY", help="Admin key"),
           json_out: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """Show models, replicas and workers of a running gateway."""
    import httpx
    from rich.console import Console
    from rich.table import Table

    headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}
    try:
        r = httpx.get(url.rstrip("/") + "/admin/models", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    if r.status_code != 200:
        typer.echo(f"{url} answered {r.status_code}: {r.text[:300]}", err=True)
        raise typer.Exit(1)
    data = r.json()
    if json_out:
        typer.echo(r.text)
        return
    t = Table(title=f"sglfleet at {url}")
    for col in ("model", "engine", "state", "workers", "restarts", "detail"):
        t.add_column(col)
    for m in data["models"]:
        ready = sum(1 for w in m["workers"] if w["eligible"])
        detail = m.get("failure") or ""
        for r_ in m.get("replicas", []):
            if r_["state"] == "STARTING":
                detail = f"{r_['phase']} {r_['elapsed_s']}s" + (
                    f" {r_['progress']:.0%}" if r_.get("progress") is not None else "")
        if m["state"] == "STOPPED" and m.get("note"):
            detail = m["note"]
        t.add_row(m["name"], m["engine"], m["state"], f"{ready}/{len(m['workers'])}",
                  str(m.get("restarts", 0)), detail[:80])
    console = Console()
    console.print(t)
    for m in data["models"]:
        for r_ in m.get("replicas", []):
            if r_.get("log_tail"):
                console.print(f"[bold]{m['name']}/{r_['replica']}[/] {r_['state']} — last log lines ({r_['log']}):")
                for line in r_["log_tail"][-5:]:
                    console.print(f"  {line[:160]}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("stop")(stop)
    app.command("status")(status)
    app.command("restart")(restart)


