"""Launch presets shipped as YAML in `sglfleet/presets/`, one per deployment in the seeds.

A preset bundles an `SGLangProfile`, the hardware it runs on, the bundled model config
(`presets/models/<model>/config.json`) and the facts the seed reports.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from sglfleet.planner.model_config import ModelArch, parse_config
from sglfleet.sglang.profile import SGLangProfile


class Hardware(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    gpu: str
    count: int = Field(1, ge=1)


class Preset(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    model: str  # bundled model config name
    draft_model: str | None = None
    hardware: Hardware
    context: int = Field(gt=0)
    profile: SGLangProfile
    roles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    facts: dict[str, Any] = Field(default_factory=dict)

    def arch(self) -> ModelArch:
        return load_bundled_model(self.model)

    def draft_arch(self) -> ModelArch | None:
        return load_bundled_model(self.draft_model) if self.draft_model else None

    def profiles(self) -> dict[str, SGLangProfile]:
        """The main profile plus one per extra role (e.g. the decode side of a PD pair)."""
        main_role = self.profile.disaggregation_mode or "server"
        out = {main_role: self.profile}
        for role, overrides in self.roles.items():
            data = self.profile.model_dump() | overrides
            out[role] = SGLangProfile.model_validate(data)
        return out


# Hugging Face ids of the bundled model configs (what `--model-path` needs).
HF_IDS: dict[str, str] = {
    "deepseek-r1-distill-llama-8b": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "deepseek-r1-distill-qwen-7b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "eagle3-gpt-oss-120b-bf16": "lmsys/EAGLE3-gpt-oss-120b-bf16",
    "gpt-oss-120b": "openai/gpt-oss-120b",
    "gpt-oss-20b": "openai/gpt-oss-20b",
    "grok-2": "xai-org/grok-2",
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
    "llama-4-scout-17b-16e-nvfp4": "nvidia/Llama-4-Scout-17B-16E-Instruct-FP4",
    "qwen2.5-0.5b-instruct": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen3-0.6b": "Qwen/Qwen3-0.6B",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "qwen3-14b": "Qwen/Qwen3-14B",
    "qwen3-235b-a22b-fp8": "Qwen/Qwen3-235B-A22B-FP8",
    "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B",
    "qwen3-32b": "Qwen/Qwen3-32B",
    "qwen3-32b-nvfp4": "nvidia/Qwen3-32B-FP4",
    "qwen3.6-35b-a3b-fp8": "Qwen/Qwen3.6-35B-A3B-FP8",
    "qwq-32b": "Qwen/QwQ-32B",
}


def hf_id(name: str) -> str:
    """The Hugging Face id of a bundled model (the name itself when unknown)."""
    return HF_IDS.get(name, name)


def _root() -> Traversable:
    return files("sglfleet").joinpath("presets")


def list_presets() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _root().iterdir() if p.name.endswith(".yaml"))


def list_bundled_models() -> list[str]:
    return sorted(p.name for p in _root().joinpath("models").iterdir() if p.is_dir())


def load_bundled_model(name: str) -> ModelArch:
    path = _root().joinpath("models", name, "config.json")
    if not path.is_file():
        raise KeyError(f"no bundled model config {name!r}; known: {', '.join(list_bundled_models())}")
    import json

    return parse_config(json.loads(path.read_text(encoding="utf-8")), name=name)


def load_preset(name: str) -> Preset:
    path = _root().joinpath(f"{name}.yaml")
    if not path.is_file():
        raise KeyError(f"no preset {name!r}; known: {', '.join(list_presets())}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Preset.model_validate({"name": name, **data})
