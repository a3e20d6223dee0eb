"""`plan()`: does a model fit, how much KV cache SGLang will give it, and which flags to use."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sglfleet.planner.hardware import GPUSpec, custom_gpu, find_gpu
from sglfleet.planner.kv import kv_bytes_for_sequence, kv_layout
from sglfleet.planner.memory import GIB, kv_pool
from sglfleet.planner.model_config import ModelArch, load_config
from sglfleet.planner.sglang_versions import NEWEST_KNOWN_VERSION, default_mem_fraction
from sglfleet.planner.weights import LOAD_OVERHEAD_GIB, estimate_weights
from sglfleet.sglang.profile import SGLangProfile
from sglfleet.sglang.rules import ModelFacts, check_profile

Verdict = Literal["fits", "fits_smaller_context", "does_not_fit"]
SPECULATIVE_MAX_RUNNING = 48  # SGLang forces this when speculative decoding is on


@dataclass(frozen=True, kw_only=True)
class PlanResult:
    """Planner output; "GB" fields are GiB (2^30 bytes), as in SGLang's logs."""

    model: str
    gpu: str
    gpu_count: int
    tp: int
    quant: str
    context: int
    weights_gb_per_gpu: float
    draft_weights_gb_per_gpu: float
    weights_gb_total: float
    params_b: float
    kv_bytes_per_token: int  # per GPU, full-attention layers (grows with context)
    pool_cell_bytes: int  # per GPU, what SGLang divides the pool by (adds the SWA share)
    state_bytes_per_seq: int  # hybrid linear attention state per sequence, per GPU
    kv_gb_per_sequence: float  # one sequence at `context`, per GPU
    free_gb_at_start: float
    mem_fraction_static: float
    mem_fraction_source: Literal["given", "sglang-default"]
    reserved_gb: float  # free x (1 - mem_fraction_static): activations and CUDA graphs
    kv_pool_gb: float
    max_total_num_tokens: int
    max_concurrent_at_context: int
    max_running_requests: int | None
    verdict: Verdict
    fits: bool
    suggested_context: int | None
    reasons: list[str]
    flags: list[str]
    argv: list[str]
    findings: list[dict[str, str]] = field(default_factory=list)
    dp: int = 1
    pp: int = 1
    page_size: int = 1
    gpu_memory_gb: float = 0.0  # total per GPU as the driver reports it
    sglang_version: str = NEWEST_KNOWN_VERSION
    mem_fraction_rule: str = ""  # which SGLang default rule (or "given")
    load_overhead_gb: float = 0.0  # included in weights_gb_per_gpu
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        import orjson

        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()


def resolve_model(model: str) -> tuple[ModelArch, Any]:
    """A preset name, a bundled model name, or a local directory with a config.json."""
    from sglfleet.planner.presets import (
        list_bundled_models,
        list_presets,
        load_bundled_model,
        load_preset,
    )

    if model in list_presets():
        preset = load_preset(model)
        return preset.arch(), preset
    if model in list_bundled_models():
        return load_bundled_model(model), None
    path = Path(model).expanduser()
    if (path / "config.json").is_file() or path.name == "config.json":
        return load_config(path), None
    raise KeyError(
        f"{model!r} is neither a preset ({', '.join(list_presets())}), a bundled model "
        f"({', '.join(list_bundled_models())}), nor a directory with a config.json"
    )


def plan(
    model: str | ModelArch,
    *,
    gpu: str | GPUSpec | None = None,
    count: int | None = None,
    context: int | None = None,
    quant: str | None = None,
    mem_fraction: float | None = None,
    kv_cache_dtype: str | None = None,
    free_gib: float | None = None,
    profile: SGLangProfile | None = None,
    draft: ModelArch | None = None,
    tp: int | None = None,
    dp: int | None = None,
    pp: int | None = None,
    page_size: int | None = None,
    sglang_version: str | None = None,
    gpu_mem_gib: float | None = None,
    load_overhead_gib: float | None = None,
    calibrated_from: str | None = None,
) -> PlanResult:
    """Predict SGLang's memory split for `model` on `count` x `gpu` (count = tp x pp x dp)."""
    assumptions: list[str] = []
    preset = None
    arch = model if isinstance(model, ModelArch) else None
    if arch is None:
        arch, preset = resolve_model(str(model))
    if preset is not None:
        profile = profile or preset.profile
        gpu = gpu or preset.hardware.gpu
        count = count or preset.hardware.count
        context = context or preset.context
        draft = draft or preset.draft_arch()
    if gpu_mem_gib is not None:
        spec = custom_gpu(gpu_mem_gib, name=str(gpu) if gpu and not isinstance(gpu, GPUSpec) else "custom")
        assumptions.append(f"GPU outside the catalog: {gpu_mem_gib:g} GiB total (--gpu-mem-gib)")
    elif isinstance(gpu, GPUSpec):
        spec = gpu
    elif gpu:
        spec = find_gpu(gpu)
    else:
        spec = find_gpu("H100-SXM")
        assumptions.append("no --gpu given: planned for one H100-SXM (80 GB); pass --gpu or --gpu-mem-gib")
    pp = pp or (profile.pp if profile else 1)
    dp = dp or (profile.dp if profile else 1)
    if tp is None:
        base = count or ((profile.tp * profile.pp * profile.dp) if profile else 1)
        if base % (pp * dp):
            raise ValueError(f"--count {base} is not a multiple of pp x dp = {pp * dp}")
        tp = max(1, base // (pp * dp))
    if count is not None and count != tp * pp * dp:
        raise ValueError(f"--count {count} does not equal tp x pp x dp = {tp} x {pp} x {dp}")
    count = tp * pp * dp
    context = context or (profile.context_length if profile else None) or arch.max_position_embeddings or 32768
    if profile is None:
        from sglfleet.planner.presets import hf_id

        profile = SGLangProfile(model_path=hf_id(arch.name))
    updates: dict[str, Any] = {"tp": tp, "pp": pp, "dp": dp}
    if page_size is not None:
        updates["page_size"] = page_size
    if mem_fraction is not None:
        updates["mem_fraction_static"] = mem_fraction
    if kv_cache_dtype is not None:
        updates["kv_cache_dtype"] = kv_cache_dtype
    if quant is not None and profile.quantization is None and quant not in ("bf16", "fp16"):
        updates["quantization"] = {"nvfp4": "modelopt_fp4"}.get(quant, quant)
    profile = profile.model_copy(update=updates)

    weights = estimate_weights(arch, quant=quant, tp=tp, pp=pp, gpu_arch=spec.arch)
    overhead = LOAD_OVERHEAD_GIB if load_overhead_gib is None else load_overhead_gib
    weights_gib = weights.gib_per_gpu + overhead
    assumptions.append(f"weights {weights.quant}: {weights.params_total / 1e9:.2f} B parameters from config.json, "
                       f"plus {overhead:.2f} GiB per GPU of loader overhead"
                       + (f" (calibrated from {calibrated_from})" if calibrated_from and load_overhead_gib is not None
                          else " (median of the public logs in benchmarks/planner)"))
    if weights.quant == "mxfp4" and arch.is_moe and spec.arch == "blackwell-dc":
        assumptions.append("MXFP4 experts padded to multiples of 256 for sm100 MoE kernels [uncertain]")
    if arch.residual_moe and weights.quant == "fp8":
        assumptions.append("residual (dense) MLP of each MoE layer kept in BF16 in an FP8 checkpoint (grok-2 log)")
    draft_gib = estimate_weights(draft, tp=tp).gib_per_gpu if draft is not None else 0.0
    layout = kv_layout(arch, tp=tp, kv_cache_dtype=profile.kv_cache_dtype,
                       attention_backend=profile.attention_backend)
    cell = layout.pool_cell_bytes
    if draft is not None:  # the draft's KV layers share the pool
        cell += kv_layout(draft, tp=tp, kv_cache_dtype=profile.kv_cache_dtype).pool_cell_bytes
    default_mfs, rule = default_mem_fraction(
        spec.memory_gib, version=sglang_version, tp=tp, pp=pp,
        speculative_algorithm=profile.speculative_algorithm, chunked_prefill_size=profile.chunked_prefill_size,
        enable_dp_attention=profile.enable_dp_attention, dp=dp)
    mfs = profile.mem_fraction_static or default_mfs
    version = sglang_version or NEWEST_KNOWN_VERSION
    if not profile.mem_fraction_static:
        assumptions.append(f"mem_fraction_static {mfs:.3f}: SGLang {version}'s default rule "
                           f"'{rule.name}' ({rule.source})")
    if free_gib is not None:
        free = free_gib
        assumptions.append(f"{free:.2f} GiB free per GPU at start" + (
            f" (calibrated from {calibrated_from})" if calibrated_from else " (given)"))
    else:
        free = spec.free_start_gib(tp)
        assumptions.append(f"{free:.2f} GiB free per GPU at start: {spec.name} total {spec.memory_gib:g} GiB "
                           f"less CUDA context" + (" and tp>1 communication buffers" if tp > 1 else "")
                           + ("; a desktop session on this card usually holds 0.5-1 GiB more: pass --free-gib"
                              if spec.desktop else ""))
    if not spec.total_measured:
        assumptions.append(f"{spec.name} total memory derived from the vendor's {spec.nominal_gb:g} GB "
                           "[uncertain]; pass --gpu-mem-gib with what the driver reports")
    max_running = profile.max_running_requests or (
        SPECULATIVE_MAX_RUNNING if profile.speculative_algorithm else None
    )
    pool = kv_pool(free_start_gib=free, weights_gib=weights_gib + draft_gib,
                   mem_fraction_static=mfs, pool_cell_bytes=cell, page_size=profile.page_size or 1,
                   state_bytes_per_seq=layout.state_bytes_per_seq, max_running_requests=max_running,
                   max_total_tokens=profile.max_total_tokens)
    tokens = pool.max_total_num_tokens
    concurrent = tokens // context if context else 0
    if pool.max_state_slots is not None:
        concurrent = min(concurrent, pool.max_state_slots)
    if max_running:
        concurrent = min(concurrent, max_running)

    reasons: list[str] = []
    flags: list[str] = []
    need = weights_gib + draft_gib
    if pool.kv_pool_gib <= 0 or tokens == 0:
        verdict: Verdict = "does_not_fit"
        reasons.append(
            f"weights need {need:.1f} GiB per GPU but only {free * mfs:.1f} GiB "
            f"({free:.1f} GiB free x mem_fraction_static {mfs:.3f}) is available for weights + KV"
        )
        reasons.append("use more GPUs (higher tp), a smaller weight format, or a GPU with more memory")
        suggested = None
    elif tokens >= context:
        verdict = "fits"
        reasons.append(
            f"KV pool {pool.kv_pool_gib:.1f} GiB holds {tokens:,} tokens = {concurrent} sequence(s) "
            f"of {context:,} tokens"
        )
        suggested = None
    else:
        verdict = "fits_smaller_context"
        suggested = max(1024, tokens // 1024 * 1024) if tokens >= 1024 else tokens
        reasons.append(f"KV pool holds {tokens:,} tokens, fewer than one {context:,}-token sequence")
        flags += ["--context-length", str(suggested)]
    if verdict == "fits" and profile.context_length is None and context != arch.max_position_embeddings:
        flags += ["--context-length", str(context)]
    if arch.max_position_embeddings and context > arch.max_position_embeddings:
        reasons.append(f"context {context:,} exceeds the model's max_position_embeddings "
                       f"{arch.max_position_embeddings:,}")
    if spec.unified:
        reasons.append(f"{spec.name} uses unified memory: the budget is what the OS and other "
                       f"processes leave free at start-up (assumed {free:.1f} GiB; pass --free-gib)")
    final = profile
    if flags:
        final = profile.model_copy(update={"context_length": int(flags[-1])})
    facts = ModelFacts(architectures=arch.architectures, quant_method=arch.quant_method,
                       quant_algo=arch.quant_algo)
    findings = check_profile(final, model=facts)
    return PlanResult(
        model=arch.name, gpu=spec.name, gpu_count=count, tp=tp, quant=weights.quant, context=context,
        weights_gb_per_gpu=round(weights_gib, 3), draft_weights_gb_per_gpu=round(draft_gib, 3),
        weights_gb_total=round(weights.gib_total, 3), params_b=round(weights.params_total / 1e9, 3),
        kv_bytes_per_token=int(layout.bytes_per_token), pool_cell_bytes=int(cell),
        state_bytes_per_seq=int(layout.state_bytes_per_seq),
        kv_gb_per_sequence=round(kv_bytes_for_sequence(layout, context) / GIB, 3),
        free_gb_at_start=round(free, 3), mem_fraction_static=mfs,
        mem_fraction_source="given" if profile.mem_fraction_static else "sglang-default",
        reserved_gb=round(pool.reserved_gib, 3), kv_pool_gb=round(pool.kv_pool_gib, 3),
        max_total_num_tokens=tokens, max_concurrent_at_context=concurrent,
        max_running_requests=max_running, verdict=verdict, fits=verdict == "fits",
        suggested_context=suggested, reasons=reasons, flags=flags, argv=final.redacted_argv(),
        findings=[{"level": f.level, "code": f.code, "message": f.message} for f in findings],
        dp=dp, pp=pp, page_size=profile.page_size or 1, gpu_memory_gb=spec.memory_gib, sglang_version=version,
        mem_fraction_rule="given" if profile.mem_fraction_static else rule.name,
        load_overhead_gb=round(overhead, 3), assumptions=assumptions,
    )
