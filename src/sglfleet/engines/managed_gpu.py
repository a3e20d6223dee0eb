"""Managed GPU engines (SGLang, vLLM): the launch profile rendered to argv, with the host,
port and served name owned by the supervisor. SGLang's /health generates a token on recent
builds and answers 503 while loading, which is exactly the readiness we want."""

from __future__ import annotations

import sys

from sglfleet.config import ModelConfig
from sglfleet.engines.base import LaunchSpec, Probe
from sglfleet.engines.sglang import SGLangProfile


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


class ManagedGPUEngine:
    def __init__(self, name: str) -> None:
        self.name = name
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
