"""Route sync (seed 004): find the worker's current address, and when it changed rewrite the
nginx upstream file, validate with `nginx -t` (restoring the old file on failure) and reload.

Idempotent: an unchanged address touches nothing and reloads nothing. `dry_run` only
reports the diff. Discovery finding no worker leaves the route as it is (a stale route
beats none), unless `allow_empty`.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sglfleet.config import KubernetesDiscoveryConfig
from sglfleet.deploy.nginx import upstream_block

_ADDR = re.compile(r"^(?:https?://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+)(?::(\d{1,5}))?/?$")


class RouteSyncError(Exception):
    """Discovery or nginx failed; the message says which and what nginx reported."""


@dataclass(frozen=True, kw_only=True)
class NginxCtl:
    """How to run nginx: `nginx [-p PREFIX] [-c CONF] -t | -s reload`."""

    binary: str = "nginx"
    prefix: str | None = None
    conf: str | None = None

    def _argv(self, *extra: str) -> list[str]:
        argv = [self.binary]
        if self.prefix:
            argv += ["-p", self.prefix]
        if self.conf:
            argv += ["-c", self.conf]
        return argv + list(extra)

    def _run(self, *extra: str) -> tuple[bool, str]:
        try:
            proc = subprocess.run(self._argv(*extra), capture_output=True, text=True, timeout=30,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, str(exc)
        return proc.returncode == 0, (proc.stderr + proc.stdout).strip()

    def test(self) -> tuple[bool, str]:
        return self._run("-t")

    def reload(self) -> tuple[bool, str]:
        return self._run("-s", "reload")


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    changed: bool
    servers: tuple[str, ...]
    diff: str
    reloaded: bool


def parse_addresses(text: str, default_port: int | None) -> list[str]:
    """`host`, `host:port`, `http://host:port` per line or whitespace, or a JSON list of them."""
    text = text.strip()
    items: list[str] = [str(x) for x in json.loads(text)] if text.startswith("[") else [
        tok for line in text.splitlines() if not line.lstrip().startswith("#") for tok in line.split()]
    out: list[str] = []
    for item in items:
        m = _ADDR.match(item.strip())
        if not m:
            raise RouteSyncError(f"discovery returned {item!r}, not a host[:port] or URL")
        port = m.group(2) or (str(default_port) if default_port else None)
        if port is None:
            raise RouteSyncError(f"{item!r} has no port; pass --port")
        out.append(f"{m.group(1)}:{port}")
    return sorted(set(out))


def from_command(command: str, default_port: int | None) -> list[str]:
    try:
        proc = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RouteSyncError(f"discovery command failed: {exc}") from None
    if proc.returncode != 0:
        raise RouteSyncError(f"discovery command exited {proc.returncode}: {proc.stderr.strip()[:300]}")
    return parse_addresses(proc.stdout, default_port)


def from_file(path: Path, default_port: int | None) -> list[str]:
    try:
        return parse_addresses(path.read_text(), default_port)
    except OSError as exc:
        raise RouteSyncError(f"cannot read {path}: {exc.strerror}") from None


def from_kubernetes(cfg: KubernetesDiscoveryConfig) -> list[str]:
    """The Ready pods' addresses, from one list call (route-sync runs from a timer)."""
    from sglfleet.deploy.discovery import DiscoveryError, Endpoint, PodWatcher

    async def once() -> list[str]:
        async def noop(_: Endpoint) -> None:
            return None

        watcher = PodWatcher(cfg, on_add=noop, on_remove=noop)
        try:
            await watcher.list_pods()
        finally:
            await watcher.stop()
        return sorted({e.url.removeprefix("http://") for e in watcher.workers})

    try:
        return asyncio.run(once())
    except (DiscoveryError, OSError) as exc:
        raise RouteSyncError(f"kubernetes discovery failed: {exc}") from None


def sync(upstream_file: Path, servers: list[str], ctl: NginxCtl, *, dry_run: bool = False,
         allow_empty: bool = False) -> SyncResult:
    if not servers and not allow_empty:
        raise RouteSyncError("discovery found no worker; the upstream was left unchanged")
    new = upstream_block(servers)
    old = upstream_file.read_text() if upstream_file.exists() else None
    if old == new:
        return SyncResult(changed=False, servers=tuple(servers), diff="", reloaded=False)
    diff = "".join(difflib.unified_diff((old or "").splitlines(True), new.splitlines(True),
                                        str(upstream_file), f"{upstream_file} (new)"))
    if dry_run:
        return SyncResult(changed=True, servers=tuple(servers), diff=diff, reloaded=False)
    tmp = upstream_file.with_name(upstream_file.name + ".sglfleet-new")
    tmp.write_text(new)
    os.replace(tmp, upstream_file)  # atomic: nginx never reads half a file
    ok, message = ctl.test()
    if not ok:
        if old is None:
            upstream_file.unlink()
        else:
            upstream_file.write_text(old)
        raise RouteSyncError(f"nginx -t rejected the new upstream (old one restored):\n{message}")
    ok, message = ctl.reload()
    if not ok:
        raise RouteSyncError(f"nginx reload failed (config is valid and in place):\n{message}")
    return SyncResult(changed=True, servers=tuple(servers), diff=diff, reloaded=True)
