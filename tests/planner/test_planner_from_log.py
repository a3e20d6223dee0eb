"""`plan --from-log` and the log parser, on real public SGLang start-up log excerpts
(tests/planner/data/*.log; each file names its source in its header)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sglfleet.planner.calibration import calibration_for, compare, load_calibration
from sglfleet.planner.cli import register
from sglfleet.planner.logparse import last_run, parse_startup_log

DATA = Path(__file__).parent / "data"
runner = CliRunner()


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test app"""

    register(app)
    return app


def test_parses_a_tp8_log_from_rank_0() -> None:
    f = parse_startup_log((DATA / "grok2_fp8_8xh100_tp8.log").read_text())
    assert (f.free_start_gib, f.weights_gib, f.kv_tokens) == (77.43, 36.73, 903439)
    assert f.kv_cache_gib == pytest.approx(27.58)
    assert f.mem_fraction_static == 0.831 and f.tp == 8 and f.args["quantization"] == "fp8"
    assert f.dist_init_gib == 1.25 and f.model_type == "Grok1ForCausalLM"
    assert f.device_name == "NVIDIA H100 80GB HBM3" and f.args["model_path"] == "/models/grok-2"
    assert (f.max_running_requests, f.context_len, f.available_gpu_mem_gib) == (3529, 131072, 10.26)


def test_parses_new_style_lines_and_derives_free_memory() -> None:
    f = parse_startup_log((DATA / "qwen3_30b_a3b_fp8_h100_tp1.log").read_text())
    assert (f.free_start_gib, f.weights_gib, f.kv_tokens, f.mem_fraction_static) == (78.48, 29.15, 392920, 0.83)
    g = parse_startup_log((DATA / "qwen3_0.6b_16gb_tp1.log").read_text())
    assert g.free_start_gib == pytest.approx(15.16) and g.free_start_derived  # 13.91 + 1.25
    assert g.mem_fraction_static is None and g.max_total_num_tokens == 104273
    b = parse_startup_log((DATA / "qwen3_8b_b200_tp1.log").read_text())
    assert b.args["page_size"] == 64 and b.args["model_path"] == "Qwen/Qwen3-8B"


def test_a_log_with_several_runs_is_read_from_the_last() -> None:
    one = (DATA / "qwen3_30b_a3b_fp8_h100_tp1.log").read_text()
    two = (DATA / "grok2_fp8_8xh100_tp8.log").read_text()
    assert parse_startup_log(one + "\n=== restart\n" + two).kv_tokens == 903439
    assert parse_startup_log(two + one).kv_tokens == 392920
    assert last_run("no start-up lines here") == "no start-up lines here"


def test_unrelated_text_gives_no_figures() -> None:
    f = parse_startup_log("hello\nworld\n")
    assert f.free_start_gib is None and f.kv_tokens is None and not f.complete


def test_compare_explains_each_gap() -> None:
    f = parse_startup_log((DATA / "grok2_fp8_8xh100_tp8.log").read_text())
    cmp = compare(f, sglang_version="0.5.2")
    by_name = {g.figure: g for g in cmp.gaps}
    assert cmp.model == "grok-2" and cmp.gpu == "H100-SXM" and cmp.tp == 8
    assert abs(by_name["weights per GPU (GiB)"].error_pct) < 5
    assert by_name["mem_fraction_static"].predicted == 0.831
    assert abs(by_name["KV tokens (planner's own inputs)"].error_pct) < 5
    assert abs(by_name["KV tokens (the log's free memory, weights and fraction)"].error_pct) < 0.35
    assert all(g.explanation for g in cmp.gaps)


def test_newest_rule_on_an_old_log_says_why(app: typer.Typer) -> None:
    res = runner.invoke(app, ["plan", "--from-log", str(DATA / "grok2_fp8_8xh100_tp8.log")])
    assert res.exit_code == 0, res.output
    assert "another SGLang version wrote the log" in res.output  # 0.818 (newest) vs 0.831 logged


def test_from_log_json_and_calibration_round_trip(app: typer.Typer, tmp_path: Path) -> None:
    cal = tmp_path / "cal.json"
    res = runner.invoke(app, ["plan", "--from-log", str(DATA / "qwen3_30b_a3b_fp8_h100_tp1.log"), "--json",
                              "--write-calibration", "--calibration", str(cal)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["model"] == "qwen3-30b-a3b" and data["calibration_written"] == str(cal)
    entries = load_calibration(cal)
    assert entries[0]["gpu"] == "H100-SXM" and entries[0]["free_start_gib"] == 78.48
    # a later plan on the same GPU uses the host's measured free memory, and says so
    later = runner.invoke(app, ["plan", "qwen3-8b", "--gpu", "H100", "--calibration", str(cal), "--json"])
    out = json.loads(later.output)
    assert out["free_gb_at_start"] == 78.48
    assert any("calibrated from" in a for a in out["assumptions"])
    # another tp on the same GPU: the free memory moves by the communication buffers
    moved = calibration_for(entries, "H100-SXM", 8)
    assert moved is not None and moved["free_start_gib"] == pytest.approx(78.48 - 1.25)


def test_from_log_errors_are_one_line(app: typer.Typer, tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("nothing\n")
    res = runner.invoke(app, ["plan", "--from-log", str(empty)])
    assert res.exit_code == 2 and "no SGLang start-up lines" in res.output
    missing = runner.invoke(app, ["plan", "--from-log", str(tmp_path / "nope.log")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    unknown = tmp_path / "unknown.log"
    unknown.write_text("[x] server_args=ServerArgs(model_path='org/unknown-model', tp_size=1)\n"
                       "Load weight begin. avail mem=20.00 GB\n")
    res = runner.invoke(app, ["plan", "--from-log", str(unknown)])
    assert res.exit_code == 2 and "cannot tell the model" in res.output
    assert "Traceback" not in res.output


def test_presets_lists_bundled_models(app: typer.Typer) -> None:
    res = runner.invoke(app, ["presets"])
    assert res.exit_code == 0 and "Qwen/Qwen3.6-35B-A3B-FP8" in res.output and "grok-2" in res.output


def test_unknown_gpu_lists_known_ones(app: typer.Typer) -> None:
    res = runner.invoke(app, ["plan", "qwen3-8b", "--gpu", "voodoo5"])
    assert res.exit_code == 2 and "RTX3090" in res.output and "--gpu-mem-gib" in res.output
    ok = runner.invoke(app, ["plan", "qwen3-8b", "--gpu", "voodoo5", "--gpu-mem-gib", "12", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["gpu_memory_gb"] == 12


def test_engine_startup_puts_real_figures_next_to_the_plan() -> None:
    from sglfleet.planner.calibration import engine_startup

    text = (DATA / "qwen3_30b_a3b_fp8_h100_tp1.log").read_text()
    fig = engine_startup(text, model="Qwen/Qwen3-30B-A3B-FP8")
    assert fig is not None and fig["actual"]["max_total_num_tokens"] == 392920
    assert fig["predicted"] is not None and fig["predicted"]["weights_gb_per_gpu"] == pytest.approx(29.15, rel=0.05)
    unknown = engine_startup(text, model="org/not-bundled")
    assert unknown is not None and unknown["predicted"] is None and unknown["actual"]["weights_gb_per_gpu"] == 29.15
    assert engine_startup("starting...\n", model="x") is None


def test_managed_sglang_engine_reads_its_log(tmp_path: Path) -> None:
    from sglfleet.config import ModelConfig
    from sglfleet.engines.managed_gpu import ManagedGPUEngine

    log = tmp_path / "engine.log"
    log.write_text("=== starting\n")
    eng = ManagedGPUEngine("sglang")
    cfg = ModelConfig(name="grok", engine="sglang", sglang={"model_path": "/models/grok-2", "tp": 8})
    assert eng.startup_figures(cfg, log) is None  # still loading
    log.write_text((DATA / "grok2_fp8_8xh100_tp8.log").read_text())
    fig = eng.startup_figures(cfg, log)
    assert fig is not None and fig["actual"]["max_total_num_tokens"] == 903439
    assert fig["predicted"]["max_total_num_tokens"] > 0
    assert eng.startup_figures(cfg, tmp_path / "missing.log") is None
    assert ManagedGPUEngine("vllm").startup_figures(cfg, log) is None
