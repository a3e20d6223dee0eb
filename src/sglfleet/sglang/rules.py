"""Flag rules for SGLang launch profiles: one function per rule, one registry list.

Each rule returns a `Finding` (or None) whose message says what to change. Errors are
combinations SGLang rejects at start-up or that crash it; warnings are host- or
checkpoint-dependent traps seen in the field.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sglfleet.sglang.profile import SGLangProfile

LLAMA4_BACKENDS = frozenset({"fa3", "aiter", "triton", "ascend", "trtllm_mha", "intel_xpu"})
SPEC_PAGED_TOPK_BACKENDS = frozenset({"flashinfer", "fa3", "triton"})


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class HostInfo:
    """Facts about the GPU host; None means unknown (the rule stays silent)."""

    has_ninja: bool | None = None
    has_build_tools: bool | None = None
    wildcard_bind_collides: bool | None = None
    private_ip: str | None = None

    @classmethod
    def detect(cls) -> HostInfo:
        return cls(
            has_ninja=shutil.which("ninja") is not None,
            has_build_tools=any(shutil.which(c) for c in ("c++", "g++", "clang++")),
            private_ip=_private_ip(),
        )


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    """What the rules need to know about the checkpoint (from its config.json)."""

    architectures: tuple[str, ...] = ()
    quant_method: str | None = None
    quant_algo: str | None = None

    @classmethod
    def from_profile(cls, profile: SGLangProfile) -> ModelFacts:
        """Read a local config.json when the model path is a directory, else guess by name."""
        cfg_path = Path(profile.model_path).expanduser() / "config.json"
        if cfg_path.is_file():
            raw = json.loads(cfg_path.read_text(encoding="utf-8"))
            q = raw.get("quantization_config") or {}
            return cls(architectures=tuple(raw.get("architectures") or ()),
                       quant_method=q.get("quant_method"), quant_algo=q.get("quant_algo"))
        lowered = profile.model_path.lower()
        archs = ("Llama4ForConditionalGeneration",) if "llama-4" in lowered or "llama4" in lowered else ()
        return cls(architectures=archs)


def _private_ip() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it picks a route
            ip = s.getsockname()[0]
    except OSError:
        return None
    return ip if ipaddress.ip_address(ip).is_private else None


Rule = Callable[[SGLangProfile, HostInfo, ModelFacts], Finding | None]


def served_name_colon(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if p.served_model_name and ":" in p.served_model_name:
        fixed = p.served_model_name.replace(":", "-")
        return Finding("error", "served-name-colon",
                       f"served_model_name {p.served_model_name!r} contains ':', which SGLang reads as "
                       f"'model:lora-adapter'; use {fixed!r} and map the old name as an alias in the gateway")
    return None


def llama4_attention_backend(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if not any(a.startswith("Llama4") for a in m.architectures):
        return None
    allowed = ", ".join(sorted(LLAMA4_BACKENDS))
    if p.attention_backend is None:
        return Finding("warning", "llama4-attention-backend",
                       f"Llama 4 needs one of these attention backends: {allowed}; set "
                       "attention_backend explicitly (triton works on GB10)")
    if p.attention_backend not in LLAMA4_BACKENDS:
        return Finding("error", "llama4-attention-backend",
                       f"attention_backend {p.attention_backend!r} is not allowed for Llama 4; "
                       f"use one of {allowed} (triton on GB10, fa3 on Hopper)")
    return None


def trtllm_mha_topk(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if p.attention_backend == "trtllm_mha" and (p.speculative_eagle_topk or 1) > 1:
        return Finding("error", "trtllm-mha-topk",
                       "attention_backend trtllm_mha does not support speculative_eagle_topk > 1; "
                       "set speculative_eagle_topk 1 or use flashinfer/fa3/triton")
    return None


def spec_topk_page_size(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if (p.speculative_eagle_topk or 1) <= 1 or (p.page_size or 1) <= 1:
        return None
    allowed = {"flashinfer"} if p.speculative_algorithm == "NGRAM" else SPEC_PAGED_TOPK_BACKENDS
    if p.attention_backend not in allowed:
        return Finding("error", "spec-topk-page-size",
                       f"speculative_eagle_topk > 1 with page_size {p.page_size} needs attention_backend "
                       f"in {sorted(allowed)}; set one of those, page_size 1 or speculative_eagle_topk 1")
    return None


def chunked_prefill_page_size(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    chunk, page = p.chunked_prefill_size, p.page_size or 1
    if chunk is None or chunk <= 0 or page <= 1 or p.disaggregation_mode == "decode":
        return None
    if chunk % page:
        fixed = max(page, chunk // page * page)
        return Finding("error", "chunked-prefill-page-size",
                       f"chunked_prefill_size {chunk} is not divisible by page_size {page}; use {fixed}")
    return None


def dp_multinode_dp_attention(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if p.dp > 1 and p.nnodes > 1 and not p.enable_dp_attention:
        return Finding("error", "dp-multinode-needs-dp-attention",
                       "dp > 1 across several nodes requires enable_dp_attention (DeepSeek/Qwen MoE "
                       "models); otherwise run one server per node behind the router")
    return None


def pp_with_speculative(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if p.pp > 1 and p.speculative_algorithm:
        return Finding("error", "pp-with-speculative",
                       "pipeline parallel (pp > 1) does not work with speculative decoding; "
                       "use tp instead of pp or remove speculative_algorithm")
    return None


def spec_params_need_steps(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if p.speculative_num_steps is None and (p.speculative_eagle_topk or p.speculative_num_draft_tokens):
        return Finding("error", "spec-params-need-steps",
                       "speculative_eagle_topk / speculative_num_draft_tokens need speculative_num_steps "
                       "too; set all three or none")
    return None


def api_key_multi_tokenizer(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if p.api_key is not None and p.tokenizer_worker_num > 1:
        return Finding("error", "api-key-multi-tokenizer",
                       "api_key is not allowed with tokenizer_worker_num > 1; set tokenizer_worker_num 1 "
                       "or drop the key and let the sglfleet gateway check it")
    return None


def wildcard_bind(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if p.host in ("0.0.0.0", "::") and h.wildcard_bind_collides:
        target = h.private_ip or "the GPU host's private IP"
        return Finding("warning", "wildcard-bind",
                       f"host {p.host} collides with the scheduler's loopback listener on this SGLang "
                       f"build; bind host {target} instead")
    return None


def flashinfer_build_tools(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if p.attention_backend != "flashinfer":
        return None
    missing = [n for n, ok in (("ninja", h.has_ninja), ("a C++ compiler", h.has_build_tools)) if ok is False]
    if missing:
        return Finding("warning", "flashinfer-build-tools",
                       f"FlashInfer JIT-compiles kernels on first run and {', '.join(missing)} is missing; "
                       "install ninja-build and build-essential on the GPU host (or the image)")
    return None


def modelopt_quant_missing(p: SGLangProfile, h: HostInfo, m: ModelFacts) -> Finding | None:
    if (m.quant_method or "").lower() == "modelopt" and not p.quantization:
        suggestion = "modelopt_fp4" if "fp4" in (m.quant_algo or "").lower() else "modelopt"
        return Finding("warning", "modelopt-quant-missing",
                       f"the checkpoint is a ModelOpt {m.quant_algo or ''} export but quantization is "
                       f"unset; set quantization {suggestion}".replace("  ", " "))
    return None


RULES: tuple[Rule, ...] = (
    served_name_colon,
    llama4_attention_backend,
    trtllm_mha_topk,
    spec_topk_page_size,
    chunked_prefill_page_size,
    dp_multinode_dp_attention,
    pp_with_speculative,
    spec_params_need_steps,
    api_key_multi_tokenizer,
    wildcard_bind,
    flashinfer_build_tools,
    modelopt_quant_missing,
)


def check_profile(
    profile: SGLangProfile, *, host_info: HostInfo | None = None, model: ModelFacts | None = None
) -> list[Finding]:
    """Run every rule; errors first, then warnings."""
    host = host_info or HostInfo()
    facts = model or ModelFacts.from_profile(profile)
    found = [f for rule in RULES if (f := rule(profile, host, facts)) is not None]
    return sorted(found, key=lambda f: f.level != "error")
