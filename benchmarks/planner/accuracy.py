"""Planner accuracy against real SGLang start-up logs (benchmarks/planner/dataset.yaml).

Run: python benchmarks/planner/accuracy.py [--json]
Prints, per row, predicted vs measured weights (GiB per GPU) and max_total_num_tokens,
once with the free memory the log measured and once with the catalog's assumption.
Then the seed checks (gpt-oss-120b + EAGLE3 on GB10 at 40K; Qwen3.6-35B-A3B on 4 x L4).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from sglfleet.planner import plan
from sglfleet.planner.hardware import find_gpu
from sglfleet.planner.kv import kv_layout
from sglfleet.planner.memory import GIB, kv_pool, sglang_defaults
from sglfleet.planner.presets import load_bundled_model, load_preset
from sglfleet.planner.weights import estimate_weights

HERE = Path(__file__).parent


def _err(pred: float | None, meas: float | None) -> float | None:
    if pred is None or meas in (None, 0):
        return None
    return (pred - meas) / meas * 100


def _plan(row: dict[str, Any], free: float | None) -> Any:
    gpu_mem = None if row["gpu"] else (row["free_start_gib"] or 0) + 0.8
    return plan(row["model"], gpu=row["gpu"], gpu_mem_gib=gpu_mem, count=row["tp"], quant=row["quant"],
                mem_fraction=row["mem_fraction_static"], sglang_version=row.get("sglang_version"),
                free_gib=free, page_size=row.get("page_size"))


def evaluate(row: dict[str, Any]) -> dict[str, Any]:
    measured = row["measured"]
    log_free = row["free_start_gib"]
    with_log = _plan(row, log_free) if log_free is not None else None
    catalog = _plan(row, None) if row["gpu"] else None
    base = with_log or catalog
    assert base is not None, row["id"]
    out: dict[str, Any] = {"id": row["id"], "weights_pred": base.weights_gb_per_gpu,
                           "weights_meas": measured["weights_gib"],
                           "weights_err_pct": _err(base.weights_gb_per_gpu, measured["weights_gib"]),
                           "mem_fraction_static": base.mem_fraction_static, "mem_fraction_rule": base.mem_fraction_rule,
                           "tokens_meas": measured["max_total_num_tokens"]}
    for label, res in (("log_free", with_log), ("catalog_free", catalog)):
        pred = res.max_total_num_tokens if res is not None else None
        out[f"tokens_pred_{label}"] = pred
        out[f"tokens_err_pct_{label}"] = _err(pred, measured["max_total_num_tokens"])
    # the memory rule alone: the log's own free memory and weights
    if log_free is not None and measured["weights_gib"] is not None:
        cell = kv_layout(load_bundled_model(row["model"]), tp=row["tp"]).pool_cell_bytes
        pool = kv_pool(free_start_gib=log_free, weights_gib=measured["weights_gib"],
                       mem_fraction_static=base.mem_fraction_static, pool_cell_bytes=cell,
                       page_size=row.get("page_size") or 1)
        out["tokens_err_pct_rule_only"] = _err(pool.max_total_num_tokens, measured["max_total_num_tokens"])
    else:
        out["tokens_err_pct_rule_only"] = None
    return out


def learned_overhead(rows: list[dict[str, Any]]) -> float | None:
    """Median of measured minus counted weights over dense BF16 rows (what LOAD_OVERHEAD_GIB is)."""
    gaps = []
    for row in rows:
        arch = load_bundled_model(row["model"])
        if arch.is_moe or row["quant"] != "bf16" or row["measured"]["weights_gib"] is None:
            continue
        counted = estimate_weights(arch, quant=row["quant"], tp=row["tp"]).gib_per_gpu
        gaps.append(row["measured"]["weights_gib"] - counted)
    return statistics.median(gaps) if gaps else None


def seed_checks() -> list[dict[str, Any]]:
    checks = []
    gpt = load_preset("gpt-oss-120b-eagle3-gb10")
    r = plan(gpt.name)
    reserve = sglang_defaults(find_gpu("GB10").memory_gib, speculative_algorithm="EAGLE3").reserved_mb / 1024
    footprint = r.weights_gb_per_gpu + r.draft_weights_gb_per_gpu + r.kv_gb_per_sequence + reserve
    checks.append({
        "check": "gpt-oss-120b + EAGLE3 on GB10, one 40K sequence",
        "weights_gib": r.weights_gb_per_gpu + r.draft_weights_gb_per_gpu,
        "kv_40k_gib": r.kv_gb_per_sequence, "sglang_reserve_gib": reserve,
        "footprint_gib": footprint, "footprint_gb": footprint * GIB / 1e9,
        "seed_measured_gb": gpt.facts["measured_memory_gb"],
        "err_pct_vs_seed_if_gb_decimal": _err(footprint * GIB / 1e9, 84.0),
        "err_pct_vs_seed_if_gb_binary": _err(footprint, 84.0),
        "static_claim_gib_at_default_fraction": r.free_gb_at_start * r.mem_fraction_static,
    })
    q = plan("qwen3.6-35b-a3b-fp8-4xl4")
    checks.append({
        "check": "Qwen3.6-35B-A3B FP8 on 4 x L4 at 131072 (validated in the seed)",
        "verdict": q.verdict, "weights_gib_per_gpu": q.weights_gb_per_gpu,
        "max_total_num_tokens": q.max_total_num_tokens,
        "sequences_at_131072": q.max_concurrent_at_context,
    })
    return checks


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    rows = yaml.safe_load((HERE / "dataset.yaml").read_text())["rows"]
    results = [evaluate(r) for r in rows]
    seeds = seed_checks()
    w = [abs(r["weights_err_pct"]) for r in results if r["weights_err_pct"] is not None]
    t = [abs(r["tokens_err_pct_log_free"]) for r in results if r["tokens_err_pct_log_free"] is not None]
    summary = {"rows": len(results), "learned_load_overhead_gib": learned_overhead(rows),
               "weights_abs_err_pct": {"n": len(w), "median": statistics.median(w), "worst": max(w)},
               "tokens_abs_err_pct_log_free": {"n": len(t), "median": statistics.median(t), "worst": max(t)}}
    if "--json" in sys.argv:
        print(json.dumps({"rows": results, "summary": summary, "seed_checks": seeds}, indent=2))
        return
    print(f"{'row':34} {'mfs':>6} {'W pred':>7} {'W meas':>7} {'W err%':>7} {'tok meas':>9} "
          f"{'tok pred(log)':>13} {'err%':>6} {'tok pred(cat)':>13} {'err%':>6} {'rule%':>6}")
    for r in results:
        print(f"{r['id']:34} {r['mem_fraction_static']:>6.3f} {_fmt(r['weights_pred']):>7} "
              f"{_fmt(r['weights_meas']):>7} "
              f"{_fmt(r['weights_err_pct'], '+.1f'):>7} {_fmt(r['tokens_meas'], ','):>9} "
              f"{_fmt(r['tokens_pred_log_free'], ','):>13} {_fmt(r['tokens_err_pct_log_free'], '+.1f'):>6} "
              f"{_fmt(r['tokens_pred_catalog_free'], ','):>13} {_fmt(r['tokens_err_pct_catalog_free'], '+.1f'):>6} "
              f"{_fmt(r['tokens_err_pct_rule_only'], '+.2f'):>6}")
    print("\nsummary:", json.dumps(summary))
    for c in seeds:
        print("\n" + c.pop("check"))
        for k, v in c.items():
            print(f"  {k}: {_fmt(v) if isinstance(v, float) else v}")


if __name__ == "__main__":
    main()
