"""One test per flag rule: the bad combination is caught, the fixed one is clean."""

from __future__ import annotations

from sglfleet.sglang.profile import SGLangProfile
from sglfleet.sglang.rules import RULES, HostInfo, ModelFacts, check_profile

PLAIN = ModelFacts(architectures=("LlamaForCausalLM",))
LLAMA4 = ModelFacts(architectures=("Llama4ForConditionalGeneration",))


def codes(profile: SGLangProfile, host: HostInfo | None = None, model: ModelFacts = PLAIN) -> list[str]:
    return [f.code for f in check_profile(profile, host_info=host, model=model)]


def P(**kw: object) -> SGLangProfile:
    return SGLangProfile(model_path="m", **kw)  # type: ignore[arg-type]


def test_every_rule_has_a_test() -> None:
    assert len(RULES) == 12


def test_served_name_colon() -> None:
    found = check_profile(P(served_model_name="gpt-oss:120b"), model=PLAIN)
    assert found[0].code == "served-name-colon" and found[0].level == "error"
    assert "'gpt-oss-120b'" in found[0].message
    assert codes(P(served_model_name="gpt-oss-120b")) == []


def test_llama4_attention_backend() -> None:
    assert codes(P(attention_backend="flashinfer"), model=LLAMA4) == ["llama4-attention-backend"]
    assert codes(P(attention_backend="triton"), model=LLAMA4) == []
    unset = check_profile(P(), model=LLAMA4)
    assert unset[0].level == "warning"


def test_trtllm_mha_topk() -> None:
    assert "trtllm-mha-topk" in codes(P(attention_backend="trtllm_mha", speculative_algorithm="EAGLE",
                                       speculative_num_steps=3, speculative_eagle_topk=4))
    assert codes(P(attention_backend="trtllm_mha", speculative_algorithm="EAGLE",
                   speculative_num_steps=3, speculative_eagle_topk=1)) == []


def test_spec_topk_page_size() -> None:
    bad = P(attention_backend="trtllm_mla", page_size=64, speculative_algorithm="EAGLE",
            speculative_num_steps=3, speculative_eagle_topk=4)
    assert codes(bad) == ["spec-topk-page-size"]
    assert codes(bad.model_copy(update={"attention_backend": "fa3"})) == []


def test_chunked_prefill_page_size() -> None:
    found = check_profile(P(chunked_prefill_size=1000, page_size=16), model=PLAIN)
    assert found[0].code == "chunked-prefill-page-size" and "use 992" in found[0].message
    assert codes(P(chunked_prefill_size=1024, page_size=16)) == []
    assert codes(P(chunked_prefill_size=1000, page_size=16, disaggregation_mode="decode")) == []


def test_dp_multinode_needs_dp_attention() -> None:
    assert codes(P(dp=2, nnodes=2)) == ["dp-multinode-needs-dp-attention"]
    assert codes(P(dp=2, nnodes=2, enable_dp_attention=True)) == []


def test_pp_with_speculative() -> None:
    assert codes(P(pp=2, speculative_algorithm="EAGLE3", speculative_num_steps=3)) == ["pp-with-speculative"]


def test_spec_params_need_steps() -> None:
    assert codes(P(speculative_algorithm="EAGLE", speculative_eagle_topk=1)) == ["spec-params-need-steps"]


def test_api_key_multi_tokenizer() -> None:
    assert codes(P(api_key="k", tokenizer_worker_num=4)) == ["api-key-multi-tokenizer"]
    assert codes(P(api_key="k")) == []


def test_wildcard_bind_suggests_private_ip() -> None:
    host = HostInfo(wildcard_bind_collides=True, private_ip="172.31.46.190")
    found = check_profile(P(host="0.0.0.0"), host_info=host, model=PLAIN)
    assert found[0].level == "warning" and "172.31.46.190" in found[0].message
    assert codes(P(host="172.31.46.190"), host) == []
    assert codes(P(host="0.0.0.0")) == []  # unknown build: silent


def test_flashinfer_build_tools() -> None:
    host = HostInfo(has_ninja=False, has_build_tools=True)
    found = check_profile(P(attention_backend="flashinfer"), host_info=host, model=PLAIN)
    assert [f.code for f in found] == ["flashinfer-build-tools"] and "ninja" in found[0].message
    assert codes(P(attention_backend="flashinfer"), HostInfo(has_ninja=True, has_build_tools=True)) == []


def test_modelopt_quant_missing() -> None:
    facts = ModelFacts(architectures=("Qwen3ForCausalLM",), quant_method="modelopt", quant_algo="NVFP4")
    found = check_profile(P(), model=facts)
    assert found[0].code == "modelopt-quant-missing" and "modelopt_fp4" in found[0].message
    assert codes(P(quantization="modelopt_fp4"), model=facts) == []


def test_facts_from_local_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "config.json").write_text(
        '{"architectures": ["Llama4ForConditionalGeneration"], '
        '"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}}')
    found = codes(P(attention_backend="flashinfer").model_copy(update={"model_path": str(tmp_path)}),
                  model=ModelFacts.from_profile(P().model_copy(update={"model_path": str(tmp_path)})))
    assert found == ["llama4-attention-backend", "modelopt-quant-missing"]


def test_presets_have_no_rule_errors() -> None:
    from sglfleet.planner.presets import list_presets, load_preset

    for name in list_presets():
        preset = load_preset(name)
        arch = preset.arch()
        facts = ModelFacts(architectures=arch.architectures, quant_method=arch.quant_method,
                           quant_algo=arch.quant_algo)
        for prof in preset.profiles().values():
            assert [f for f in check_profile(prof, model=facts) if f.level == "error"] == [], name
