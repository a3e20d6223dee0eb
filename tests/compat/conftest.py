"""One `sglfleet serve` (loopback) in front of both engine kinds: `smol` (the embedded llama.cpp
engine) and `simsg` (the SGLang-shaped simulator as an `engine: sglang` worker), each with a
`-notools` twin and one task route `auto` -> simsg. The `engine` fixture is parametrized over
the two; the llama.cpp case carries the `engine` mark."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sglfleet.sim.config import SimConfig
from sglfleet.sim.process import SimProcess, find_free_ports
from tests.fleetproc import GatewayProc, start_gateway


@dataclass(frozen=True)
class Engine:
    kind: str
    url: str
    model: str


def compat_fleet(sim_url: str, *, llamacpp: bool) -> dict[str, Any]:
    sim = {"engine": "sglang", "urls": [sim_url], "upstream_model": "sim"}
    models: list[dict[str, Any]] = [{"name": "simsg", **sim, "capabilities": {"tools": True}},
                                    {"name": "simsg-notools", **sim}]
    if llamacpp:
        smol = {"engine": "llamacpp", "n_threads": 2, "n_ctx": 2048}
        models += [{"name": "smol", **smol, "capabilities": {"tools": True}},
                   {"name": "smol-notools", **smol}]
    return {"models": models,
            "routes": [{"name": "auto", "default_route": "ANY", "routes": [{"name": "ANY", "target": "simsg"}]}]}


@pytest.fixture(scope="session")
def compat_sim() -> Iterator[SimProcess]:
    proc = SimProcess(SimConfig(fast=True, context_len=8192), port=find_free_ports(1)).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def compat_gw(request: pytest.FixtureRequest, compat_sim: SimProcess,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    """With llama.cpp when any collected test needs it (the `engine` mark is selected)."""
    wants_llama = any(item.get_closest_marker("engine") for item in request.session.items
                      if "compat" in str(item.fspath))
    gp = start_gateway(tmp_path_factory.mktemp("compat"), compat_fleet(compat_sim.urls[0], llamacpp=wants_llama),
                       timeout=240)
    yield gp
    gp.stop()


@pytest.fixture(params=[pytest.param("llamacpp", marks=pytest.mark.engine), "sglang"])
def engine(request: pytest.FixtureRequest, compat_gw: GatewayProc) -> Engine:
    return Engine(request.param, compat_gw.url, "smol" if request.param == "llamacpp" else "simsg")
