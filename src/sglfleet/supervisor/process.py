"""One engine process: spawned under the orphan guard in its own process group, output to a
log file, stopped with SIGTERM -> grace -> SIGKILL on the whole group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from sglfleet.core.redact import redact_argv
from sglfleet.engines.base import LaunchSpec


class SpawnError(RuntimeError):
    """The engine process could not be started at all (bad binary, unreadable log dir)."""


class EngineProcess:
    def __init__(self, name: str, spec: LaunchSpec, log_path: Path, grace_s: float = 10.0) -> None:
        self.name = name
        self.spec = spec
        self.log_path = log_path
        self.grace_s = grace_s
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self._watchdog_w: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    async def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        r, w = os.pipe()
        try:
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(redact_argv(self.spec.argv))}\n".encode())
                log.flush()
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "sglfleet.supervisor.guard", str(r), str(self.grace_s), "--",
                    *self.spec.argv,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(r,), start_new_session=True,
                    env={**os.environ, **self.spec.env, "PYTHONUNBUFFERED": "1"},
                )
        except OSError as exc:
            os.close(w)
            raise SpawnError(f"{self.name}: cannot start {self.spec.argv[0]}: {exc}") from exc
        finally:
            os.close(r)
        self._watchdog_w = w  # held open until stop(); its closing (or our death) ends the group
        self.started_at = time.monotonic()

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at if self.started_at else 0.0

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        self._close_watchdog()
        return code

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # already gone; the reaper fixes the state

    async def stop(self) -> int | None:
        """SIGTERM to the group, wait the grace period (+ the guard's own), then SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.signal_group(signal.SIGCONT)  # a stopped (SIGSTOP) group cannot handle SIGTERM
            self.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), self.grace_s + 2.0)
            except TimeoutError:
                self.signal_group(signal.SIGKILL)
                await self.proc.wait()
        self.signal_group(signal.SIGKILL)  # stragglers left in the group
        self._close_watchdog()
        return self.proc.returncode

    def kill_now(self) -> None:
        self.signal_group(signal.SIGKILL)
        self._close_watchdog()

    def _close_watchdog(self) -> None:
        if self._watchdog_w is not None:
            os.close(self._watchdog_w)
            self._watchdog_w = None

    def log_tail(self, lines: int = 20) -> list[str]:
        return read_tail(self.log_path, lines)


def read_tail(path: Path, lines: int = 20, max_bytes: int = 64 * 1024) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    return list(deque((t for t in text if t.strip()), maxlen=lines))
