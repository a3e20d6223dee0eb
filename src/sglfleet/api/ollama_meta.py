"""Model metadata in Ollama's shapes (/api/tags, /api/show, /api/ps), derived from the fleet file.

sglfleet does not read weights, so the Ollama fields come from the model's config: the family
and parameter size from its name or path (`qwen3-32b` -> family "qwen3", "32B"), the context
window from `capabilities.context_window` (else `n_ctx`), the capabilities list from
`capabilities`. Clients check these: Roo Code keeps only models whose /api/show lists "tools"
and reads the context window from the `model_info` key ending in ".context_length".
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sglfleet.api.serves import is_embedding_model
from sglfleet.config import BUILTIN_MODEL, ModelConfig
from sglfleet.engines.registry import get_engine
from sglfleet.routing.pool import ModelPool

# The Ollama API level implemented here; clients gate features on /api/version.
OLLAMA_COMPAT_VERSION = "0.12.0"

# Longest first: "qwen3" must win over "qwen", "deepseek2" over "deepseek".
_FAMILIES = ("gpt-oss", "deepseek2", "deepseek", "qwen3moe", "qwen3", "qwen2.5", "qwen2", "qwen",
             "llama4", "llama3", "llama", "gemma3", "gemma2", "gemma", "mistral", "mixtral",
             "phi4", "phi3", "phi", "smollm2", "smollm", "granite", "olmo", "command-r", "glm4",
             "glm", "nemotron", "kimi", "minimax")
# What the embedded GGUF really is (Ollama reports the architecture, not the marketing name).
_ARCH_OF_FAMILY = {"smollm2": "llama", "smollm": "llama"}
_SIZE = re.compile(r"(?<![a-z0-9])(\d+(?:\.\d+)?)([bm])(?![a-z0-9])", re.IGNORECASE)
_QUANT = re.compile(r"(?<![a-z0-9])(q\d_k_[sml]|q\d_k|q\d_\d|q\d|iq\d_\w+|f16|bf16|fp8|nvfp4|fp4|"
                    r"awq|gptq|int4|int8|mxfp4)(?![a-z0-9])", re.IGNORECASE)
_FAR_FUTURE = "2999-01-01T00:00:00Z"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(time.time())


def _source_name(cfg: ModelConfig) -> str:
    """The most descriptive name we have: the upstream model id or path, then the served name."""
    parts = [cfg.name, cfg.upstream_model or ""]
    if cfg.model_path and cfg.model_path != BUILTIN_MODEL:
        parts.append(cfg.model_path)
    if cfg.sglang is not None:
        parts.append(cfg.sglang.model_path)
    if cfg.preset:
        parts.append(cfg.preset)
    return " ".join(p for p in parts if p).lower()


def _is_builtin(cfg: ModelConfig) -> bool:
    """The model is a GGUF shipped in a PyPI package (its facts are known exactly)."""
    return cfg.resolved_model_path in get_engine(cfg.engine).builtin_models


def family_of(cfg: ModelConfig) -> str:
    text = _source_name(cfg)
    if _is_builtin(cfg):
        text += " smollm2-135m"
    for fam in _FAMILIES:
        if re.search(rf"(?<![a-z0-9]){re.escape(fam)}", text):
            return _ARCH_OF_FAMILY.get(fam, fam)
    head = re.split(r"[-_:./ 0-9]", cfg.name.lower(), maxsplit=1)[0]
    return head or "unknown"


def parameter_size_of(cfg: ModelConfig) -> str:
    """'135M', '32B', '35B'; active-parameter markers such as 'a3b' are skipped."""
    text = _source_name(cfg)
    if _is_builtin(cfg):
        text += " 135m"
    for m in _SIZE.finditer(text):
        if m.start() > 0 and text[m.start() - 1] in "aA":
            continue
        return f"{m.group(1)}{m.group(2).upper()}"
    return "unknown"


def parameter_count_of(size: str) -> int | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([BM])", size)
    if not m:
        return None
    return int(float(m.group(1)) * (1e9 if m.group(2) == "B" else 1e6))


def quantization_of(cfg: ModelConfig) -> str:
    if _is_builtin(cfg):
        return "Q4_1"
    m = _QUANT.search(_source_name(cfg))
    return m.group(1).upper() if m else "unknown"


def context_length_of(cfg: ModelConfig) -> int:
    return cfg.capabilities.context_window or cfg.n_ctx


def capabilities_of(cfg: ModelConfig) -> list[str]:
    caps = ["completion"]
    caps += [name for name, on in (("tools", cfg.capabilities.tools), ("vision", cfg.capabilities.vision),
                                   ("thinking", cfg.capabilities.thinking)) if on]
    if is_embedding_model(cfg):
        caps = ["embedding"]
    return caps


def digest_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass(slots=True)
class ModelMeta:
    """Per-app cache of the few values that cost something to derive (engine size estimates)."""

    started_at: float
    _sizes: dict[str, int] = field(default_factory=dict)

    def size_of(self, cfg: ModelConfig) -> int:
        if cfg.memory_bytes is not None:
            return cfg.memory_bytes
        if cfg.name not in self._sizes:
            try:
                est = get_engine(cfg.engine).estimate_bytes(cfg)
            except (OSError, KeyError, ValueError):  # decoration: never fail a listing over it
                est = None
            self._sizes[cfg.name] = int(est or 0)
        return self._sizes[cfg.name]

    def details(self, cfg: ModelConfig) -> dict[str, Any]:
        family = family_of(cfg)
        return {"parent_model": "", "format": get_engine(cfg.engine).weights_format,
                "family": family, "families": [family], "parameter_size": parameter_size_of(cfg),
                "quantization_level": quantization_of(cfg)}

    def tag_entries(self, pool: ModelPool) -> list[dict[str, Any]]:
        """The served name, then every Ollama-style alias (with a colon) as its own entry, so
        clients that stored `qwen3.6:35b-a3b` still find it in their model picker."""
        cfg = pool.cfg
        names = [pool.name, *(a for a in cfg.aliases if ":" in a)]
        base = {"modified_at": rfc3339(self.started_at), "size": self.size_of(cfg),
                "digest": digest_of(pool.name), "details": self.details(cfg),
                "capabilities": capabilities_of(cfg)}
        return [{"name": n, "model": n, **base} for n in names]

    def show(self, pool: ModelPool) -> dict[str, Any]:
        cfg = pool.cfg
        details = self.details(cfg)
        arch = details["family"]
        ctx = context_length_of(cfg)
        info: dict[str, Any] = {"general.architecture": arch, "general.basename": pool.name,
                                f"{arch}.context_length": ctx}
        count = parameter_count_of(details["parameter_size"])
        if count is not None:
            info["general.parameter_count"] = count
        parameters = f"num_ctx {ctx}"
        source = cfg.resolved_model_path if cfg.managed else cfg.served_model
        return {
            "license": "",
            "modelfile": (f"# Served by sglfleet ({cfg.engine} engine)\n"
                          f"FROM {source}\nPARAMETER {parameters}\n"),
            "parameters": parameters,
            "template": "{{ .Prompt }}",
            "details": details,
            "model_info": info,
            "capabilities": capabilities_of(cfg),
            "modified_at": rfc3339(self.started_at),
        }

    def running(self, pool: ModelPool) -> dict[str, Any] | None:
        if not pool.has_eligible():
            return None
        cfg = pool.cfg
        expires = rfc3339(time.time() + cfg.keep_alive_s) if cfg.keep_alive_s else _FAR_FUTURE
        size = self.size_of(cfg)
        return {"name": pool.name, "model": pool.name, "size": size, "digest": digest_of(pool.name),
                "details": self.details(cfg), "expires_at": expires,
                "size_vram": size if get_engine(cfg.engine).on_gpu else 0,
                "context_length": context_length_of(cfg)}
