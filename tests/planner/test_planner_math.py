"""Planner arithmetic on hand-computed cases."""

from __future__ import annotations

import pytest

from sglfleet.planner import plan
from sglfleet.planner.hardware import find_gpu
from sglfleet.planner.kv import kv_layout
from sglfleet.planner.memory import kv_pool, legacy_mem_fraction, sglang_defaults
from sglfleet.planner.model_config import parse_config
from sglfleet.planner.presets import load_bundled_model
from sglfleet.planner.weights import estimate_weights, param_groups


def test_qwen3_32b_bf16_kv_is_256_kib_per_token() -> None:
    arch = load_bundled_model("qwen3-32b")
    assert kv_layout(arch).bytes_per_token == 256 * 1024  # 2 x 64 layers x 8 heads x 128 x 2 B
    assert kv_layout(arch, tp=8).bytes_per_token == 32 * 1024
    assert kv_layout(arch, kv_cache_dtype="fp8_e4m3").bytes_per_token == 128 * 1024


def test_kv_heads_are_replicated_past_tp() -> None:
    arch = load_bundled_model("qwen3-30b-a3b")  # 4 KV heads
    assert kv_layout(arch, tp=8).bytes_per_token == kv_layout(arch, tp=4).bytes_per_token == 2 * 48 * 128 * 2


def test_llama_8b_parameter_count_is_exact() -> None:
    arch = load_bundled_model("llama-3.1-8b")
    assert param_groups(arch).total == 8_030_261_248
    w = estimate_weights(arch)
    assert w.bytes_total == pytest.approx(8_030_261_248 * 2)


def test_gpt_oss_120b_mxfp4_weights() -> None:
    w = estimate_weights(load_bundled_model("gpt-oss-120b"))
    assert w.quant == "mxfp4"
    assert w.gib_total == pytest.approx(60.7, abs=0.3)  # 114.7 B expert params at 4.25 bits + 2.1 B BF16


def test_sliding_window_layers_do_not_grow() -> None:
    layout = kv_layout(load_bundled_model("gpt-oss-120b"))
    assert layout.bytes_per_token == 18 * 2 * 8 * 64 * 2  # full layers only
    assert layout.pool_cell_bytes == pytest.approx((18 + 0.8 * 18) * 2048)
    assert layout.window == 128


def test_mla_kv() -> None:
    cfg = {"architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 7168, "num_hidden_layers": 61,
           "num_attention_heads": 128, "num_key_value_heads": 128, "intermediate_size": 18432,
           "vocab_size": 129280, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
           "v_head_dim": 128, "q_lora_rank": 1536, "n_routed_experts": 256, "moe_intermediate_size": 2048,
           "n_shared_experts": 1, "first_k_dense_replace": 3, "num_experts_per_tok": 8}
    arch = parse_config(cfg)
    assert kv_layout(arch, tp=8).bytes_per_token == 576 * 61 * 2
    assert 660e9 < param_groups(arch).total < 690e9  # DeepSeek-V3: 671 B (+ MTP excluded)


def test_hybrid_linear_attention_state() -> None:
    layout = kv_layout(load_bundled_model("qwen3.6-35b-a3b-fp8"), tp=4)
    assert layout.bytes_per_token == 10 * 2 * 1 * 256 * 2
    conv = 3 * 8192 / 4 * 2
    ssm = 8 * 128 * 128 * 4
    assert layout.state_bytes_per_seq == pytest.approx(30 * (conv + ssm))


def test_pool_rule_matches_a_real_log() -> None:
    # QwQ-32B on 4 x L4: free 21.63, weights 15.54, mfs 0.85 -> SGLang logged 46,611 tokens
    pool = kv_pool(free_start_gib=21.63, weights_gib=15.54, mem_fraction_static=0.85,
                   pool_cell_bytes=2 * 64 * 2 * 128 * 2)
    assert pool.max_total_num_tokens == pytest.approx(46_611, rel=0.002)
    assert kv_pool(free_start_gib=10, weights_gib=20, mem_fraction_static=0.9,
                   pool_cell_bytes=1).max_total_num_tokens == 0


def test_page_size_rounds_down() -> None:
    pool = kv_pool(free_start_gib=1, weights_gib=0, mem_fraction_static=0.5, pool_cell_bytes=1000,
                   page_size=64)
    assert pool.max_total_num_tokens % 64 == 0


def test_default_mem_fraction_follows_sglang_tiers() -> None:
    assert sglang_defaults(79.65).mem_fraction_static == 0.835  # H100: 13,440 MB reserved
    assert sglang_defaults(22.49, tp=4).mem_fraction_static == 0.815
    gb10 = sglang_defaults(119.7, speculative_algorithm="EAGLE3")
    assert gb10.reserved_mb == 13440 + 2048
    assert legacy_mem_fraction(1) == 0.88 and legacy_mem_fraction(4) == 0.85


def test_catalog_lookup() -> None:
    assert find_gpu("nvidia h100 80gb hbm3").name == "H100-SXM"
    assert find_gpu("NVIDIA H100 NVL").name == "H100-NVL"  # never the 80 GB part
    assert find_gpu("NVIDIA GeForce RTX 3090").name == "RTX3090"
    assert find_gpu("rtx 4070 ti super").name == "RTX4070TiSUPER"
    assert find_gpu("AMD Instinct MI300X").vendor == "amd"
    assert find_gpu("l4").name == "L4" and find_gpu("GB10").unified
    with pytest.raises(KeyError, match="known: .*RTX5080"):
        find_gpu("voodoo5")


def test_plan_verdicts() -> None:
    ok = plan("qwen3-32b", gpu="H200", count=1, context=32768)
    assert ok.verdict == "fits" and ok.fits and ok.max_concurrent_at_context >= 1
    assert ok.kv_bytes_per_token == 262144
    small = plan("qwen3-32b", gpu="H100", count=1, context=40960)
    assert small.verdict == "fits_smaller_context" and small.flags[0] == "--context-length"
    assert "--context-length" in small.argv
    none = plan("qwen3-32b", gpu="L4", count=1)
    assert none.verdict == "does_not_fit" and not none.fits and none.max_total_num_tokens == 0


def test_seed_qwen36_on_4xl4_fits_131072() -> None:
    r = plan("qwen3.6-35b-a3b-fp8-4xl4")
    assert r.verdict == "fits" and r.tp == 4 and r.max_concurrent_at_context >= 1
    assert r.mem_fraction_static == 0.88 and r.mem_fraction_source == "given"
    assert r.argv[r.argv.index("--model-path") + 1].startswith("/")  # the preset's own path


def test_bundled_model_renders_its_hugging_face_id() -> None:
    r = plan("qwen3.6-35b-a3b-fp8", gpu="L4", count=4)
    assert r.argv[r.argv.index("--model-path") + 1] == "Qwen/Qwen3.6-35B-A3B-FP8"


def test_plan_json_schema() -> None:
    import json

    data = json.loads(plan("gpt-oss-120b-eagle3-gb10").to_json())
    for key in ("weights_gb_per_gpu", "kv_bytes_per_token", "max_total_num_tokens",
                "max_concurrent_at_context", "fits", "reasons", "argv"):
        assert key in data
    assert data["draft_weights_gb_per_gpu"] > 0
