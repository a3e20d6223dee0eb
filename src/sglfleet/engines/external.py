"""Workers sglfleet does not launch: any OpenAI-compatible base URL (SGLang, vLLM, Ollama's
/v1, llama.cpp). Probed through /v1/models and a 1-token generation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sglfleet.engines.base import LaunchSpec, Probe
from sglfleet.engines.contract import EXTERNAL

if TYPE_CHECKING:  # engines never import config at run time (config imports engines)
    from sglfleet.config import ModelConfig


class ExternalEngine:
    name = "external"
    probe = Probe(health_path=None, generate=False, models_path="/v1/models")
    heartbeat_path = "/v1/models"
    first_byte_s = 300.0  # unknown engine behind it: long prompts and queues get room
    stall_s = 60.0
    usage_in_stream = EXTERNAL.usage_in_stream  # (the contract says; kept as attributes for callers)
    schema_in_json_object = EXTERNAL.schema_in_json_object
    memory_saver = False  # SGLang warm sleep (supervisor/sleep.py)
    continuation = "chat"  # how a broken stream is continued (api/migration.py)
    weights_format = "safetensors"
    on_gpu = True
    builtin_models: frozenset[str] = frozenset()
    contract = EXTERNAL

    def launch(self, model: ModelConfig, *, host: str, port: int, replica: int) -> LaunchSpec:
        raise RuntimeError(f"model {model.name!r}: external workers are not launched by sglfleet")

    def estimate_bytes(self, model: ModelConfig) -> int | None:
        return 0

