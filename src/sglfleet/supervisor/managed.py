"""One supervised engine replica: start, readiness, liveness, crash -> backoff -> restart.

The run loop owns every transition of its Lifecycle; admin actions (stop, reset) cancel it
and take over. The router-facing Worker is marked ready only while the state is READY.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from sglfleet.config import ModelConfig
from sglfleet.core.redact import redact_text
from sglfleet.core.worker import Worker
from sglfleet.engines.base import Engine, LaunchSpec
from sglfleet.supervisor.hooks import HookResult, run_hooks, summarize_failures
from sglfleet.supervisor.policy import CrashTracker
from sglfleet.supervisor.process import EngineProcess, SpawnError, read_tail
from sglfleet.supervisor.states import Lifecycle, State
from sglfleet.upstream.health import probe_worker

log = logging.getLogger("sglfleet.supervisor")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class StartProgress:
    phase: str = "stopped"  # spawning | fetching | hooks | loading | warming up | ready | backoff
    started_at: float = 0.0  # time.time() of the current start attempt
    detail: str = ""
    fraction: float | None = None  # 0..1 where the phase knows it (a download)


# Before a start: returns the model config to launch (e.g. with a rehydrated model_path).
Prepare = Callable[["ManagedWorker"], Awaitable[ModelConfig]]


class ManagedWorker:
    def __init__(self, model: ModelConfig, engine: Engine, worker: Worker, replica: int, *,
                 session: aiohttp.ClientSession, log_dir: Path, host: str = "127.0.0.1",
                 on_change: Callable[[ManagedWorker], None] | None = None,
                 prepare: Prepare | None = None) -> None:
        self.model = model
        self.engine = engine
        self.worker = worker
        self.replica = replica
        self.session = session
        self.host = host
        self.policy = model.restart
        self.log_path = log_dir / f"{model.name}-{replica}.log"
        self.lifecycle = Lifecycle(f"{model.name}/{replica}")
        self.crashes = CrashTracker(self.policy)
        self.process: EngineProcess | None = None
        self.progress = StartProgress()
        self.fatal_since = 0.0
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._on_change = on_change
        self._prepare = prepare
        self.hook_results: deque[HookResult] = deque(maxlen=20)
        self.lifecycle.add_listener(lambda t: self._changed())

    @property
    def state(self) -> State:
        return self.lifecycle.state

    @property
    def running(self) -> bool:
        """Its run loop is active (true from start(), before the first transition)."""
        return self._task is not None and not self._task.done()

    def _changed(self) -> None:
        self.worker.ready = self.state is State.READY
        if self.state is State.READY:
            self._ready.set()
        else:
            self._ready.clear()
        if self._on_change:
            self._on_change(self)

    # -- admin interface --------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            if self.state is State.FATAL:
                self.lifecycle.transition(State.STOPPED, "reset")  # FATAL -> STOPPED
                self.crashes.reset()
            self._task = asyncio.create_task(self._run(), name=f"supervise-{self.lifecycle.name}")

    async def wait_ready(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def stop(self, reason: str = "admin stop") -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self.state in (State.STARTING, State.READY, State.UNHEALTHY, State.BACKOFF, State.SLEEPING):
            self.lifecycle.transition(State.STOPPING, reason)
        if self.process is not None:
            await self.process.stop()
            self.process = None
            await self._hooks("after_stop", 0)
        self.progress = StartProgress("stopped", 0.0, reason)
        if self.state in (State.STOPPING, State.FATAL):
            self.lifecycle.transition(State.STOPPED, reason)

    def kill_now(self) -> None:
        if self.process is not None:
            self.process.kill_now()

    def log_tail(self, lines: int = 15) -> list[str]:
        """The engine log's last lines, secrets masked (they reach /admin, the dashboard and,
        as crash reasons, API clients)."""
        return [redact_text(line) for line in read_tail(self.log_path, lines)]

    async def _hooks(self, event: str, port: int) -> str:
        """Run the model's hooks for `event`; returns a failure summary ("" if all passed)."""
        if not getattr(self.model.hooks, event):
            return ""
        env = {"SGLFLEET_MODEL": self.model.name, "SGLFLEET_REPLICA": str(self.replica),
               "SGLFLEET_PORT": str(port)}
        results = await run_hooks(self.model.hooks, event, env=env, log_path=self.log_path)
        self.hook_results.extend(results)
        failed = summarize_failures(results)
        if failed:
            log.warning("%s: %s", self.lifecycle.name, failed)
        return failed

    # -- the run loop -----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            reason = await self._run_once()
            uptime = self.process.uptime_s() if self.process else 0.0
            if self.process is not None:
                await self.process.stop()
                self.process = None
                await self._hooks("after_stop", 0)
            self.crashes.record(reason, uptime)
            if self.policy.autorestart == "never":
                self.lifecycle.transition(State.FATAL, f"exited and autorestart=never: {reason}")
                self.fatal_since = time.time()
                return
            if self.crashes.is_flapping():
                self.lifecycle.transition(  # BACKOFF/READY/STARTING -> FATAL
                    State.FATAL, f"{len(self.crashes.crashes)} crashes within "
                    f"{self.policy.flap_window_s:g}s; last: {reason}")
                self.fatal_since = time.time()
                return
            delay = self.crashes.next_delay_s()
            self.lifecycle.transition(State.BACKOFF, f"{reason}; restart in {delay:.1f}s")
            self.progress = StartProgress("backoff", time.time(), reason)
            await asyncio.sleep(delay)

    async def _run_once(self) -> str:
        """Start the engine and supervise it until it fails; returns why it failed."""
        port = free_port(self.host)
        self.progress = StartProgress("preparing", time.time())
        self.lifecycle.transition(State.STARTING, f"port {port}")  # STOPPED/BACKOFF -> STARTING
        if self._prepare is not None:
            try:
                self.model = await self._prepare(self)
            except Exception as exc:  # a failed fetch counts as a failed start (backoff, breaker)
                return f"prepare failed: {exc}"
        self.progress.phase = "hooks"
        failed = await self._hooks("before_start", port)
        if failed and self.model.hooks.fail_start_on_error:
            return f"before_start {failed}"
        try:
            spec: LaunchSpec = self.engine.launch(self.model, host=self.host, port=port, replica=self.replica)
        except (OSError, ValueError) as exc:
            return f"cannot build the engine command: {exc}"
        self.worker.url = spec.url
        self.progress.phase, self.progress.detail = "spawning", " ".join(spec.argv[:4])
        self.process = EngineProcess(self.lifecycle.name, spec, self.log_path, self.policy.stop_grace_s)
        try:
            await self.process.spawn()
        except SpawnError as exc:
            return str(exc)
        failure = await self._wait_ready()
        if failure:
            return failure
        self.lifecycle.transition(State.READY, f"ready in {time.time() - self.progress.started_at:.1f}s")
        self.progress = StartProgress("ready", self.progress.started_at)
        await self._hooks("after_ready", port)
        return await self._monitor()

    async def _exit_reason(self) -> str:
        assert self.process is not None
        code = self.process.returncode
        tail = self.log_tail(3)
        summary = tail[-1] if tail else "no output"
        what = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return f"engine {what}: {summary[:300]}"

    async def _wait_ready(self) -> str | None:
        assert self.process is not None
        deadline = time.monotonic() + self.policy.startup_timeout_s
        self.progress.phase = "loading"
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                return await self._exit_reason()
            res = await probe_worker(self.session, self.worker.url, self.engine.probe,
                                     model_id=self.model.served_model, auth=self.worker.auth,
                                     timeout_s=min(30.0, self.policy.liveness_timeout_s), generate=False)
            if res.ok:
                self.progress.phase = "warming up"
                res = await probe_worker(self.session, self.worker.url, self.engine.probe,
                                         model_id=self.model.served_model, auth=self.worker.auth,
                                         timeout_s=self.policy.liveness_timeout_s, generate=True)
                if res.ok:
                    return None
            self.progress.detail = res.detail
            await asyncio.sleep(0.25)
        return f"not ready after {self.policy.startup_timeout_s:g}s (startup timeout): {self.progress.detail}"

    async def _monitor(self) -> str:
        """Wait for the process to exit or stop answering (liveness = it answers a probe)."""
        assert self.process is not None
        exit_wait = asyncio.ensure_future(self.process.wait())
        failures = 0
        # Liveness has two signals. The heartbeat (upstream/heartbeat.py: a GET the engine
        # answers from its event loop, sent whatever the traffic) marks a hung engine stalled
        # within seconds. The deep probe (a 1-token generation) would queue behind real work on
        # an engine that serves one request at a time, so it runs only while the worker has
        # nothing in flight, or once the heartbeat says it stopped answering.
        try:
            while True:
                done, _ = await asyncio.wait({exit_wait}, timeout=self.policy.liveness_interval_s)
                if done:
                    return await self._exit_reason()
                w = self.worker
                if (w.attempts and not w.stalled) or self.state is not State.READY:  # (asleep or waking)
                    failures = 0
                    continue
                res = await probe_worker(self.session, w.url, self.engine.probe,
                                         model_id=self.model.served_model, auth=self.worker.auth,
                                         timeout_s=self.policy.liveness_timeout_s)
                if res.ok:
                    failures = 0
                    continue
                if exit_wait.done():
                    return await self._exit_reason()
                failures += 1
                w.note_error(f"liveness probe: {res.detail}")
                if failures >= self.policy.liveness_failures:
                    # READY -> UNHEALTHY: it is alive but does not answer (hung); kill and restart
                    self.lifecycle.transition(State.UNHEALTHY, res.detail)
                    return f"hung: liveness probe failed {failures}x ({res.detail})"
        finally:
            exit_wait.cancel()
