"""Weight memory: parameter counts derived from the architecture, bytes per format, TP split.

Parameters are grouped so that each group can carry its own storage format: quantized
checkpoints keep embeddings, lm_head, routers and norms in BF16, and MXFP4 MoE models
(gpt-oss) also keep attention in BF16.
"""

from __future__ import annotations

from dataclasses import dataclass

from sglfleet.planner.model_config import ModelArch

GIB = float(1 << 30)
# Per-GPU memory the loader holds beyond the parameters (vocab padding, buffers, allocator
# rounding): the median gap of the dense rows of benchmarks/planner/dataset.yaml, measured
# "mem usage" minus counted parameters (0.02 .. 0.28 GiB over 8 logs).
LOAD_OVERHEAD_GIB = 0.13

# Bits per parameter of each storage format, block scales included.
BITS_PER_PARAM: dict[str, float] = {
    "bf16": 16.0,
    "fp16": 16.0,
    "fp8": 8.0 + 32.0 / (128 * 128),  # 128x128 block scales in FP32
    "int8": 8.0 + 16.0 / 128,
    "awq": 4.0 + 16.0 / 128 + 4.0 / 128,  # int4, group 128, fp16 scale + 4-bit zero
    "gptq": 4.0 + 16.0 / 128 + 4.0 / 128,
    "mxfp4": 4.25,  # 32 x E2M1 + one E8M0 scale
    "nvfp4": 4.5,  # 16 x E2M1 + one FP8 scale
}

# Aliases users type (`--quant`, config quant_method, SGLang --quantization values).
QUANT_ALIASES: dict[str, str] = {
    "none": "bf16",
    "bfloat16": "bf16",
    "float16": "fp16",
    "modelopt_fp8": "fp8",
    "w8a8_fp8": "fp8",
    "compressed-tensors": "fp8",
    "w8a8_int8": "int8",
    "awq_marlin": "awq",
    "gptq_marlin": "gptq",
    "int4": "awq",
    "modelopt_fp4": "nvfp4",
    "fp4": "nvfp4",
}


def normalize_quant(name: str | None) -> str:
    key = (name or "bf16").lower()
    key = QUANT_ALIASES.get(key, key)
    if key == "modelopt":
        key = "nvfp4"
    if key not in BITS_PER_PARAM:
        raise ValueError(f"unknown weight format {name!r}; use one of {sorted(BITS_PER_PARAM)}")
    return key


def checkpoint_quant(arch: ModelArch) -> str:
    """The weight format a checkpoint declares in its config.json."""
    method = (arch.quant_method or "").lower()
    algo = (arch.quant_algo or "").lower()
    if method == "modelopt":
        return "nvfp4" if "fp4" in algo else "fp8"
    if method in ("", "none"):
        return "fp16" if arch.torch_dtype in ("float16", "fp16") else "bf16"
    return normalize_quant(method)


@dataclass(frozen=True, kw_only=True)
class ParamGroups:
    """Parameter counts (whole model, before TP) per storage group."""

    embeddings: int  # embed_tokens + lm_head (vocab-parallel)
    attention: int  # q/k/v/o, MLA and linear-attention projections
    kv_proj: int  # the k/v part of `attention` (replicated when kv_heads < tp)
    mlp: int  # dense MLPs and experts, shared experts
    residual_mlp: int  # grok `residual_moe`: the dense MLP that runs beside the experts
    router: int
    replicated: int  # norms, biases, vision tower

    @property
    def total(self) -> int:
        return self.embeddings + self.attention + self.mlp + self.residual_mlp + self.router + self.replicated


def _attention_params(a: ModelArch) -> tuple[int, int]:
    h, hd = a.hidden_size, a.head_dim
    full = a.count("full") + a.count("sliding") + a.count("chunked")
    if a.mla is not None:
        m = a.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        q = h * m.q_lora_rank + m.q_lora_rank * a.num_heads * qk if m.q_lora_rank else h * a.num_heads * qk
        kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank * a.num_heads * (
            m.qk_nope_head_dim + m.v_head_dim
        )
        o = a.num_heads * m.v_head_dim * h
        return a.num_layers * (q + kv + o), 0
    in_dim = 2 * h if a.is_eagle3 else h
    q = in_dim * a.num_heads * hd * (2 if a.gated_q else 1)
    kv = 2 * in_dim * a.num_kv_heads * hd
    o = a.num_heads * hd * h
    bias = (a.num_heads + 2 * a.num_kv_heads) * hd if a.attention_bias else 0
    per_layer = q + kv + o + bias
    total = full * per_layer
    if a.linear is not None:
        lin = a.linear
        key_dim, value_dim = lin.num_key_heads * lin.key_head_dim, lin.num_value_heads * lin.value_head_dim
        per_lin = h * (2 * key_dim + 2 * value_dim) + h * 2 * lin.num_value_heads
        per_lin += lin.conv_dim * lin.conv_kernel + value_dim * h
        total += a.count("linear") * per_lin
    return total, full * kv


def param_groups(a: ModelArch) -> ParamGroups:
    h = a.hidden_size
    vocab_out = a.draft_vocab_size or a.vocab_size
    embeddings = a.vocab_size * h + (0 if a.tie_word_embeddings else vocab_out * h)
    attention, kv_proj = _attention_params(a)
    mlp = router = residual = 0
    for i in range(a.num_layers):
        if a.is_moe_layer(i):
            mlp += a.num_experts * 3 * h * a.moe_intermediate_size
            mlp += 3 * h * a.shared_expert_intermediate_size
            router += h * a.num_experts
            if a.residual_moe:
                residual += 3 * h * a.intermediate_size
        else:
            mlp += 3 * h * a.intermediate_size
    if a.is_eagle3:
        mlp += 3 * h * h  # fc that fuses three target hidden states
    replicated = a.num_layers * 2 * h + h + a.vision_params
    return ParamGroups(
        embeddings=embeddings, attention=attention, kv_proj=kv_proj, mlp=mlp, residual_mlp=residual,
        router=router, replicated=replicated,
    )


def _bits(group: str, quant: str, a: ModelArch) -> float:
    if quant in ("bf16", "fp16") or group in ("embeddings", "router", "replicated"):
        return 16.0
    if quant == "mxfp4" and group == "attention":
        return 16.0  # gpt-oss keeps self_attn in BF16 (modules_to_not_convert)
    if quant == "mxfp4" and group == "mlp" and not a.is_moe:
        return 16.0
    if group == "residual_mlp" and quant == "fp8":
        # grok-2 FP8: 128 of 835 weight names carry no FP8 scale (64 layers x gate_up/down of the
        # residual MLP), so that MLP loads in BF16 [inferred from the public grok-2 start-up log].
        return 16.0
    return BITS_PER_PARAM[quant]


@dataclass(frozen=True, kw_only=True)
class WeightEstimate:
    quant: str
    params_total: int
    bytes_total: float
    bytes_per_gpu: float

    @property
    def gib_per_gpu(self) -> float:
        return self.bytes_per_gpu / GIB

    @property
    def gib_total(self) -> float:
        return self.bytes_total / GIB


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def expert_padding(a: ModelArch, quant: str, gpu_arch: str | None) -> float:
    """Growth of MXFP4 expert weights on Blackwell, whose MoE kernels want hidden and expert
    sizes padded to multiples of 256 on sm100 parts (gpt-oss: 2880 -> 3072) [uncertain: recalled loader
    behaviour, consistent with the gpt-oss-20b B200 log]."""
    if quant != "mxfp4" or not a.is_moe or gpu_arch != "blackwell-dc":
        return 1.0
    h, i = a.hidden_size, a.moe_intermediate_size
    return (_round_up(h, 256) * _round_up(i, 256)) / (h * i)


def estimate_weights(a: ModelArch, *, quant: str | None = None, tp: int = 1, pp: int = 1,
                     gpu_arch: str | None = None) -> WeightEstimate:
    """Weight bytes for the whole model and for the most loaded GPU of a tp x pp group."""
    q = normalize_quant(quant) if quant else checkpoint_quant(a)
    g = param_groups(a)
    params = g.total
    pad = expert_padding(a, q, gpu_arch)
    if pad != 1.0:
        g = ParamGroups(embeddings=g.embeddings, attention=g.attention, kv_proj=g.kv_proj, mlp=int(g.mlp * pad),
                        residual_mlp=g.residual_mlp, router=g.router, replicated=g.replicated)

    def nbytes(group: str, n: int) -> float:
        return n * _bits(group, q, a) / 8.0

    total = sum(
        nbytes(name, n)
        for name, n in (
            ("embeddings", g.embeddings), ("attention", g.attention), ("mlp", g.mlp),
            ("residual_mlp", g.residual_mlp), ("router", g.router), ("replicated", g.replicated),
        )
    )
    # K/V projections are replicated across ranks once tp exceeds the KV head count.
    kv_copies = max(1, tp // max(1, a.num_kv_heads)) if a.mla is None else 1
    sharded = (
        nbytes("embeddings", g.embeddings) + nbytes("attention", g.attention)
        + nbytes("attention", g.kv_proj) * (kv_copies - 1) + nbytes("mlp", g.mlp)
        + nbytes("residual_mlp", g.residual_mlp)
    )
    per_gpu = sharded / tp + nbytes("router", g.router) + nbytes("replicated", g.replicated)
    # Pipeline stages hold layers only; embeddings are on the first/last stage (worst case).
    if pp > 1:
        per_gpu = (per_gpu - nbytes("embeddings", g.embeddings) / tp) / pp + nbytes(
            "embeddings", g.embeddings
        ) / tp
    return WeightEstimate(quant=q, params_total=params, bytes_total=total, bytes_per_gpu=per_gpu)
