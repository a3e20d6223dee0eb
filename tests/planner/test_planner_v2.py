"""Planner v2: SGLang version rules, residual MoE, catalogue, parallel options, assumptions."""

from __future__ import annotations

import pytest

from sglfleet.planner import plan
from sglfleet.planner.hardware import CATALOG, dist_overhead_gib, find_gpu
from sglfleet.planner.presets import load_bundled_model
from sglfleet.planner.sglang_versions import default_mem_fraction, parse_version, rule_for
from sglfleet.planner.weights import estimate_weights, param_groups


def test_version_rules_reproduce_logged_defaults() -> None:
    # values printed in public logs that ran with SGLang's default
    assert default_mem_fraction(79.65, version="0.5.2", tp=8)[0] == 0.831  # grok-2, 8 x H100
    assert default_mem_fraction(23.99, version="0.4.9", tp=1)[0] == 0.879  # 24 GB card, 2025-07
    assert default_mem_fraction(15.92, version="0.4.10", tp=1)[0] == 0.818  # RTX 5080, 2025-08
    assert default_mem_fraction(79.65, version="0.5.3", tp=8)[0] == 0.818  # newest rule, H100 tp 8
    assert default_mem_fraction(79.65, version="0.4.6", tp=4)[0] == 0.85  # by-tp table


def test_version_parsing_and_rule_choice() -> None:
    assert parse_version("v0.5.2rc2") == (0, 5, 2)
    assert rule_for("0.4.6.post5").name == "by-tp"
    assert rule_for("0.4.7").name == "tiered-reserve" and rule_for("0.5.2").name == "tiered-reserve"
    assert rule_for(None).name == "computed-reserve"
    with pytest.raises(ValueError):
        parse_version("latest")


def test_grok_residual_moe_counts_the_dense_mlp() -> None:
    arch = load_bundled_model("grok-2")
    g = param_groups(arch)
    assert g.residual_mlp == 64 * 3 * 8192 * 32768  # 51.5 B
    assert 268e9 < g.total < 271e9  # the log: "#parameters (actual): 269.56 B"
    w = estimate_weights(arch, quant="fp8", tp=8).gib_per_gpu
    assert abs(w - 36.73) / 36.73 < 0.05  # logged "mem usage=36.73 GB"


def test_mlp_only_layers_are_dense() -> None:
    from sglfleet.planner.model_config import parse_config

    cfg = {"architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 64, "num_hidden_layers": 4,
           "num_attention_heads": 4, "intermediate_size": 128, "moe_intermediate_size": 32, "num_experts": 8,
           "vocab_size": 100, "mlp_only_layers": [0, 3]}
    arch = parse_config(cfg)
    assert [arch.is_moe_layer(i) for i in range(4)] == [False, True, True, False]
    assert param_groups(arch).router == 2 * 64 * 8


def test_catalogue_covers_self_hosters_and_cites_sources() -> None:
    names = {s.name for s in CATALOG}
    for wanted in ("RTX3090", "RTX4090", "RTX5080", "RTX5090", "RTX4070TiSUPER", "RTXA6000", "RTXPro6000",
                   "A10G", "L4", "L40S", "A100-40GB", "A100-80GB", "H100-PCIe", "H100-SXM", "H100-NVL", "H20",
                   "H200", "B200", "B300", "GB200", "GB300", "MI300X", "MI325X", "MI355X"):
        assert wanted in names
    assert all(s.source.startswith("https://") for s in CATALOG)
    assert max(s.memory_gib for s in CATALOG) > 178  # B300 / MI355X


def test_tp8_start_up_costs_are_modelled() -> None:
    h100 = find_gpu("H100-SXM")
    assert dist_overhead_gib(8) > dist_overhead_gib(4) > dist_overhead_gib(1) == 0
    assert abs(h100.free_start_gib(8) - 77.43) < 0.3  # grok-2 log: "Load weight begin. avail mem=77.43 GB"


def test_parallel_options_and_page_size() -> None:
    r = plan("qwen3-32b", gpu="H100", tp=2, dp=2, page_size=64)
    assert (r.tp, r.dp, r.gpu_count, r.page_size) == (2, 2, 4, 64)
    assert r.max_total_num_tokens % 64 == 0
    assert "--dp-size" in r.argv and "--page-size" in r.argv
    with pytest.raises(ValueError, match="does not equal"):
        plan("qwen3-32b", gpu="H100", count=3, tp=2)


def test_assumptions_are_written_and_unknown_gpu_needs_memory() -> None:
    r = plan("qwen3-8b")
    text = " ".join(r.assumptions)
    assert "no --gpu given" in text and "mem_fraction_static" in text and "loader overhead" in text
    custom = plan("qwen3-8b", gpu="MyCard", gpu_mem_gib=40)
    assert custom.gpu == "MyCard" and custom.gpu_memory_gb == 40
    with pytest.raises(KeyError):
        plan("qwen3-8b", gpu="MyCard")


def test_sglang_version_changes_the_default_fraction() -> None:
    old = plan("llama-3.1-8b", gpu="RTX4090", sglang_version="0.4.9")
    new = plan("llama-3.1-8b", gpu="RTX4090")
    assert old.mem_fraction_static == 0.879 and old.mem_fraction_rule == "tiered-reserve"
    assert new.mem_fraction_rule == "computed-reserve" and new.mem_fraction_static != old.mem_fraction_static
