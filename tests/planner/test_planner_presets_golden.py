"""Golden argv for every shipped preset (regenerate deliberately when a preset changes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sglfleet.planner.presets import list_presets, load_preset

GOLDEN = Path(__file__).parent / "golden"
EXPECTED = {
    "gpt-oss-120b-eagle3-gb10", "qwen3.6-35b-a3b-fp8-4xl4", "qwen3-32b-nvfp4-gb10",
    "llama4-scout-nvfp4-gb10", "deepseek-r1-distill-llama-8b-a10g", "deepseek-r1-distill-llama-8b-pd",
}


def test_the_six_seed_presets_ship() -> None:
    assert set(list_presets()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_argv_matches_golden(name: str) -> None:
    preset = load_preset(name)
    # the golden files keep "~"; the docker line carries the expanded home directory
    golden = json.loads((GOLDEN / f"{name}.json").read_text().replace('"~/', '"' + os.path.expanduser("~") + "/"))
    rendered = {role: prof.to_argv() for role, prof in preset.profiles().items()}
    rendered["docker"] = preset.profile.to_docker_run()
    assert rendered == golden


def test_seed_facts_are_carried() -> None:
    gpt = load_preset("gpt-oss-120b-eagle3-gb10")
    assert gpt.facts["measured_memory_gb"] == 84.0
    p = gpt.profile
    assert (p.speculative_num_steps, p.speculative_eagle_topk, p.speculative_num_draft_tokens) == (3, 1, 4)
    qwen = load_preset("qwen3.6-35b-a3b-fp8-4xl4").profile
    assert (qwen.tp, qwen.attention_backend, qwen.context_length, qwen.mem_fraction_static) == (
        4, "flashinfer", 131072, 0.88)
    pd = load_preset("deepseek-r1-distill-llama-8b-pd").profiles()
    assert pd["prefill"].disaggregation_mode == "prefill" and pd["decode"].disaggregation_mode == "decode"
