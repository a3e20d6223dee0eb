"""The systemd watchdog's check (seed 004): every engine answers `/health` and serves its
model name on `/v1/models`; a failing engine's unit is restarted when asked to."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sglfleet.sglang.profile import HEALTH_PATH, MODELS_PATH, check_served_model


@dataclass(frozen=True, kw_only=True)
class Check:
    unit: str
    url: str
    served_model: str
    problem: str | None  # None = healthy


async def check_engine(session: aiohttp.ClientSession, engine: dict[str, Any], timeout_s: float) -> Check:
    url, name = str(engine["url"]).rstrip("/"), str(engine["served_model"])
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    problem: str | None
    try:
        async with session.get(url + HEALTH_PATH, timeout=timeout) as resp:
            if resp.status != 200:
                problem = f"{HEALTH_PATH} answered {resp.status}"
            else:
                async with session.get(url + MODELS_PATH, timeout=timeout) as models:
                    problem = check_served_model(await models.json(content_type=None), name)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return Check(unit=str(engine["unit"]), url=url, served_model=name, problem=problem)


async def check_all(spec_path: Path, timeout_s: float = 30.0) -> list[Check]:
    engines = json.loads(await asyncio.to_thread(spec_path.read_text))["engines"]
    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(check_engine(session, e, timeout_s) for e in engines)))


def restart(unit: str) -> str | None:
    """`systemctl restart UNIT`; None on success, else the error text."""
    try:
        proc = subprocess.run(["systemctl", "restart", unit], capture_output=True, text=True, timeout=120,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if proc.returncode == 0 else proc.stderr.strip()
