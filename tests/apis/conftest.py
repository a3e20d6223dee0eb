"""Fixtures for the Anthropic, Responses and embeddings API tests (loopback only).

- `fake`: the protocol-real fake OpenAI engine of the Ollama tests (reasoning_content deltas,
  tool calls streamed as fragments, a mid-stream error on demand): deterministic output.
- `sim`: one simulated SGLang worker (`sglfleet sim`, fast mode) as a real child process; it
  serves chat and, as SGLang with --is-embedding does, /v1/embeddings.
- `gw`: an in-process gateway with an API key in front of both: `toolbot` (fake; tools,
  thinking), `simchat` (sim), `simembed` (sim, an embedding model) and the task-route model
  `auto` (everything -> simchat).
- `smol`: `sglfleet serve` with no fleet file (the embedded default: SmolLM2 for chat and the
  same GGUF in embedding mode), for the `engine` tests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sglfleet.sim.config import SimConfig
from sglfleet.sim.process import SimProcess, find_free_ports
from tests.fleetproc import GatewayProc, start_gateway

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ollama"))

from ollama_fake_upstream import MODEL as FAKE_MODEL  # noqa: E402
from ollama_fake_upstream import FakeUpstream, run_fake_upstream  # noqa: E402
from ollama_helpers import Gateway, serve_gateway  # noqa: E402

KEY = "sk-apis-test"


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    with run_fake_upstream() as upstream:
        yield upstream


@pytest.fixture(scope="session")
def sim() -> Iterator[SimProcess]:
    proc = SimProcess(SimConfig(fast=True), port=find_free_ports(1)).start()
    yield proc
    proc.stop()


def fleet(fake_url: str, sim_urls: list[str], **gateway: object) -> dict[str, object]:
    return {
        "gateway": {"api_keys": [KEY], **gateway},
        "models": [
            {"name": "toolbot", "engine": "external", "urls": [fake_url], "upstream_model": FAKE_MODEL,
             "capabilities": {"tools": True, "thinking": True}},
            {"name": "simchat", "engine": "external", "urls": sim_urls, "upstream_model": "sim"},
            {"name": "simembed", "engine": "external", "urls": sim_urls, "upstream_model": "sim",
             "capabilities": {"embedding": True}},
        ],
        "routes": [{"name": "auto", "default_route": "ANY",
                    "routes": [{"name": "ANY", "target": "simchat"}]}],
    }


@pytest.fixture(scope="session")
def gw(fake: FakeUpstream, sim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serve_gateway(tmp_path_factory.mktemp("apis"), fleet(fake.url, list(sim.urls))) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def smol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    gp = start_gateway(tmp_path_factory.mktemp("apis-smol"), {}, timeout=180)
    yield gp
    gp.stop()
