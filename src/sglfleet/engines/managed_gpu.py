"""Managed GPU engines (SGLang, vLLM): the launch profile rendered to argv, with the host,
port and served name owned by the supervisor. SGLang's /health generates a token on recent
builds and answers 503 while loading, which is exactly the readiness we want."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sglfleet.engines.base import LaunchSpec, Probe
from sglfleet.engines.contract import SGLANG
from sglfleet.sglang.profile import SGLangProfile

if TYPE_CHECKING:  # engines never import config at run time (config imports engines)
    from sglfleet.config import ModelConfig


def sglang_profile(model: ModelConfig) -> SGLangProfile:
    """The model's profile: its preset (if any), overlaid with its `sglang:` block."""
    base: dict[str, object] = {}
    if model.preset:
        from sglfleet.planner.presets import load_preset

        base = load_preset(model.preset).profile.model_dump(exclude_unset=True)
    if model.sglang is not None:
        base.update(model.sglang.model_dump(exclude_unset=True))
    if "model_path" not in base and model.model_path:
        base["model_path"] = model.model_path
    return SGLangProfile.model_validate(base)


STARTUP_LOG_READ_BYTES = 4 << 20  # start-up lines of the last run sit near the end of the log


class ManagedGPUEngine:
    heartbeat_path = "/v1/models"
    first_byte_s = 180.0  # queueing plus the prefill of a long context on a busy server
    stall_s = 60.0  # decode pauses for other requests' prefill, retractions
    usage_in_stream = SGLANG.usage_in_stream  # (the contract says; kept as attributes for callers)
    schema_in_json_object = SGLANG.schema_in_json_object
    continuation = "chat"  # how a broken stream is continued (api/migration.py)
    weights_format = "safetensors"
    on_gpu = True
    builtin_models: frozenset[str] = frozenset()
    contract = SGLANG

    def __init__(self, name: str) -> None:
        self.name = name
        self._startup_cache: dict[str, tuple[tuple[int, float], dict[str, Any] | None]] = {}
        self.memory_saver = name == "sglang"  # /release_memory_occupation (supervisor/sleep.py)
        self.probe = (Probe(health_path="/health", generate=False) if name == "sglang"
                      else Probe(health_path="/health", generate=True))

    def launch(self, model: ModelConfig, *, host: str, port: int, replica: int) -> LaunchSpec:
        if self.name == "sglang":
            prof = sglang_profile(model).model_copy(
                update={"host": host, "port": port, "served_model_name": model.served_model,
                        "python": sys.executable})
            argv = prof.to_argv()
            if model.capabilities.embedding and "--is-embedding" not in argv:
                argv.append("--is-embedding")  # SGLang serves /v1/embeddings only in this mode
            if model.evict == "sleep":  # warm sleep: release/resume without losing the weights
                argv += [f for f in ("--enable-memory-saver", "--enable-weights-cpu-backup") if f not in argv]
            return LaunchSpec(argv=tuple(argv), url=f"http://{host}:{port}", env=dict(prof.env))
        argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                "--model", model.resolved_model_path, "--served-model-name", model.served_model,
                "--host", host, "--port", str(port), *model.engine_args]
        return LaunchSpec(argv=tuple(argv), url=f"http://{host}:{port}")

    def estimate_bytes(self, model: ModelConfig) -> int | None:
        if self.name != "sglang":
            return None
        try:
            from sglfleet.planner import plan

            result = plan(model.preset or sglang_profile(model).model_path, profile=sglang_profile(model))
            return int(result.weights_gb_per_gpu * (1 << 30))
        except Exception:  # planner needs a known model config; unknown -> no estimate
            return None

    def startup_figures(self, model: ModelConfig, log_path: Path) -> dict[str, Any] | None:
        """The engine's real memory figures from its log next to the planner's prediction
        (`planner.calibration.engine_startup`), cached until the log changes."""
        if self.name != "sglang":
            return None
        try:
            st = log_path.stat()
        except OSError:
            return None
        key = (st.st_size, st.st_mtime)
        cached = self._startup_cache.get(str(log_path))
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            from sglfleet.planner.calibration import engine_startup

            with open(log_path, "rb") as fh:
                fh.seek(max(0, st.st_size - STARTUP_LOG_READ_BYTES))
                text = fh.read().decode("utf-8", errors="replace")
            profile = sglang_profile(model)
            figures = engine_startup(text, model=model.preset or profile.model_path, quant=profile.quantization)
        except Exception:  # noqa: BLE001 - a figure for the dashboard must never break a snapshot
            figures = None
        self._startup_cache[str(log_path)] = (key, figures)
        return figures
