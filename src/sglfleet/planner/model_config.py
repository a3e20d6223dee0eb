"""The architecture facts the planner needs, parsed from a Hugging Face `config.json`.

Handles dense and MoE decoders, GQA, sliding-window / chunked-local layers (gpt-oss,
Llama 4), MLA (DeepSeek V2/V3), hybrid linear attention (Qwen3-Next / Qwen3.5 Gated
DeltaNet) and EAGLE3 draft heads. Multimodal configs are read from their `text_config`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

LayerKind = Literal["full", "sliding", "chunked", "linear"]

# Architectures whose checkpoints SGLang loads with a Llama-4 attention backend check.
LLAMA4_ARCHS = frozenset({"Llama4ForConditionalGeneration", "Llama4ForCausalLM"})


@dataclass(frozen=True, kw_only=True)
class MLADims:
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None = None


@dataclass(frozen=True, kw_only=True)
class LinearAttnDims:
    """Gated DeltaNet dimensions (Qwen3-Next / Qwen3.5 `linear_*` keys)."""

    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int = 4

    @property
    def conv_dim(self) -> int:
        return (
            self.key_head_dim * self.num_key_heads * 2 + self.value_head_dim * self.num_value_heads
        )


@dataclass(frozen=True, kw_only=True)
class ModelArch:
    name: str
    architectures: tuple[str, ...]
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    max_position_embeddings: int | None = None
    attention_bias: bool = False
    gated_q: bool = False  # Qwen3-Next style output gate folded into q_proj
    # MoE
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    first_k_dense: int = 0
    moe_layer_step: int = 1
    mlp_only_layers: tuple[int, ...] = ()  # Qwen MoE: layers that keep a dense MLP instead
    residual_moe: bool = False  # grok: every MoE layer also runs a dense MLP of intermediate_size
    # attention layout
    layer_kinds: tuple[LayerKind, ...] = ()
    sliding_window: int | None = None
    mla: MLADims | None = None
    linear: LinearAttnDims | None = None
    # checkpoint facts
    quant_method: str | None = None
    quant_algo: str | None = None
    torch_dtype: str = "bfloat16"
    vision_params: int = 0  # parameters of a vision tower, kept in BF16
    is_eagle3: bool = False
    draft_vocab_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_llama4(self) -> bool:
        return bool(LLAMA4_ARCHS.intersection(self.architectures))

    def kinds(self) -> tuple[LayerKind, ...]:
        return self.layer_kinds or tuple("full" for _ in range(self.num_layers))

    def count(self, kind: LayerKind) -> int:
        return sum(1 for k in self.kinds() if k == kind)

    def is_moe_layer(self, index: int) -> bool:
        if not self.is_moe or index < self.first_k_dense or index in self.mlp_only_layers:
            return False
        return (index + 1) % max(1, self.moe_layer_step) == 0


def _layer_kinds(cfg: dict[str, Any], num_layers: int) -> tuple[LayerKind, ...]:
    names = cfg.get("layer_types")
    if isinstance(names, list) and len(names) == num_layers:
        mapping: dict[str, LayerKind] = {
            "full_attention": "full",
            "sliding_attention": "sliding",
            "linear_attention": "linear",
            "chunked_attention": "chunked",
        }
        return tuple(mapping.get(str(n), "full") for n in names)
    interval = cfg.get("full_attention_interval")
    if interval and ("linear_num_value_heads" in cfg or "linear_key_head_dim" in cfg):
        return tuple("full" if (i + 1) % int(interval) == 0 else "linear" for i in range(num_layers))
    if cfg.get("attention_chunk_size"):
        # Llama 4: NoPE (global) layers every 4th, the others use chunked local attention.
        no_rope = cfg.get("no_rope_layers")
        if isinstance(no_rope, list) and len(no_rope) == num_layers:
            return tuple("chunked" if flag else "full" for flag in no_rope)
        step = int(cfg.get("no_rope_layer_interval", 4))
        return tuple("full" if (i + 1) % step == 0 else "chunked" for i in range(num_layers))
    return ()


def parse_config(raw: dict[str, Any], *, name: str = "model") -> ModelArch:
    """Build a `ModelArch` from a parsed config.json (text_config merged over the top level)."""
    archs = tuple(raw.get("architectures") or ())
    cfg = dict(raw)
    text = raw.get("text_config")
    if isinstance(text, dict):
        cfg.update(text)
    vision_params = int(raw.get("vision_params", 0))
    hidden = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    layers = int(cfg["num_hidden_layers"])
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts") or 0)
    moe_inter = int(cfg.get("moe_intermediate_size") or 0)
    inter = int(cfg.get("intermediate_size") or 0)
    if experts and not moe_inter:
        moe_inter = inter  # gpt-oss, Llama 4, Mixtral: intermediate_size is the expert size
    if experts and "intermediate_size_mlp" in cfg:
        inter = int(cfg["intermediate_size_mlp"])
    shared = int(cfg.get("shared_expert_intermediate_size") or 0)
    if not shared and cfg.get("n_shared_experts"):
        shared = int(cfg["n_shared_experts"]) * moe_inter
    if not shared and any(a in LLAMA4_ARCHS for a in archs):
        shared = moe_inter  # Llama 4 always has one shared expert
    mla = None
    if cfg.get("kv_lora_rank"):
        mla = MLADims(
            kv_lora_rank=int(cfg["kv_lora_rank"]),
            qk_rope_head_dim=int(cfg["qk_rope_head_dim"]),
            qk_nope_head_dim=int(cfg["qk_nope_head_dim"]),
            v_head_dim=int(cfg["v_head_dim"]),
            q_lora_rank=int(cfg["q_lora_rank"]) if cfg.get("q_lora_rank") else None,
        )
    linear = None
    if cfg.get("linear_num_value_heads"):
        linear = LinearAttnDims(
            num_key_heads=int(cfg["linear_num_key_heads"]),
            num_value_heads=int(cfg["linear_num_value_heads"]),
            key_head_dim=int(cfg["linear_key_head_dim"]),
            value_head_dim=int(cfg["linear_value_head_dim"]),
            conv_kernel=int(cfg.get("linear_conv_kernel_dim", 4)),
        )
    qcfg = raw.get("quantization_config") or {}
    interleave = (cfg.get("interleave_moe_layer_step") or cfg.get("decoder_sparse_step")
                  or cfg.get("moe_layer_freq") or 1)
    return ModelArch(
        name=name,
        architectures=archs,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=int(cfg["vocab_size"]),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))),
        max_position_embeddings=cfg.get("max_position_embeddings"),
        attention_bias=bool(cfg.get("attention_bias", False) or cfg.get("qkv_bias", False)),
        gated_q=bool(linear is not None),
        num_experts=experts,
        num_experts_per_tok=int(cfg.get("num_experts_per_tok") or cfg.get("experts_per_token") or 0),
        moe_intermediate_size=moe_inter,
        shared_expert_intermediate_size=shared,
        first_k_dense=int(cfg.get("first_k_dense_replace") or 0),
        moe_layer_step=int(interleave),
        mlp_only_layers=tuple(int(i) for i in cfg.get("mlp_only_layers") or ()),
        residual_moe=bool(cfg.get("residual_moe", False)),
        layer_kinds=_layer_kinds(cfg, layers),
        sliding_window=cfg.get("sliding_window") or cfg.get("attention_chunk_size"),
        mla=mla,
        linear=linear,
        quant_method=qcfg.get("quant_method"),
        quant_algo=qcfg.get("quant_algo"),
        torch_dtype=str(cfg.get("torch_dtype") or raw.get("torch_dtype") or "bfloat16"),
        vision_params=vision_params,
        is_eagle3=any("Eagle3" in a for a in archs),
        draft_vocab_size=cfg.get("draft_vocab_size"),
    )


def load_config(path: str | Path, *, name: str | None = None) -> ModelArch:
    """Read `config.json` from a file or a model directory."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    raw = json.loads(p.read_text(encoding="utf-8"))
    return parse_config(raw, name=name or p.parent.name)
