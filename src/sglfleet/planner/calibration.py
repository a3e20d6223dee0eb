"""`sglfleet plan --from-log`: the planner's prediction next to what an SGLang log measured,
each gap explained, and a per-host calibration file that later `plan` runs apply.

The calibration file (JSON, default `~/.config/sglfleet/planner-calibration.json`, or
`$SGLFLEET_PLANNER_CALIBRATION`) keeps, per GPU model and tp size, the free memory SGLang
measured at start and the loader overhead beyond the counted parameters.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sglfleet.planner.hardware import GPUSpec, custom_gpu, dist_overhead_gib, find_gpu
from sglfleet.planner.kv import kv_layout
from sglfleet.planner.logparse import StartupFigures, parse_startup_log
from sglfleet.planner.memory import kv_pool
from sglfleet.planner.model_config import ModelArch, load_config
from sglfleet.planner.planning import PlanResult, plan
from sglfleet.planner.presets import HF_IDS, list_bundled_models, load_bundled_model

CALIBRATION_ENV = "SGLFLEET_PLANNER_CALIBRATION"


def default_calibration_path() -> Path:
    env = os.environ.get(CALIBRATION_ENV)
    return Path(env).expanduser() if env else Path("~/.config/sglfleet/planner-calibration.json").expanduser()


def model_from_path(model_path: str) -> tuple[ModelArch, str | None] | None:
    """A bundled config (by name or Hugging Face id, HF cache paths included) or a local
    directory with config.json, for the `model_path` a log shows; with the weight format the
    name implies (`-FP8`)."""
    p = Path(model_path).expanduser()
    if (p / "config.json").is_file():
        return load_config(p), None
    m = re.search(r"models--([^/]+)--([^/]+)", model_path)
    hf = f"{m.group(1)}/{m.group(2)}" if m else model_path.strip("/")
    by_id = {v.lower(): k for k, v in HF_IDS.items()}
    candidates = [hf.lower(), hf.split("/")[-1].lower()]
    for key in candidates:
        if key in by_id:
            return load_bundled_model(by_id[key]), None
        if key in list_bundled_models():
            return load_bundled_model(key), None
    for key in candidates:  # e.g. Qwen/Qwen3-30B-A3B-FP8 -> the BF16 config, FP8 weights
        if key.endswith("-fp8"):
            base = key[: -len("-fp8")]
            if base in by_id:
                return load_bundled_model(by_id[base]), "fp8"
            if base in list_bundled_models():
                return load_bundled_model(base), "fp8"
    return None


@dataclass(frozen=True, kw_only=True)
class Gap:
    figure: str
    predicted: float | None
    actual: float | None
    explanation: str

    @property
    def error_pct(self) -> float | None:
        if self.predicted is None or not self.actual:
            return None
        return (self.predicted - self.actual) / self.actual * 100

    def to_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "predicted": self.predicted, "actual": self.actual,
                "error_pct": None if self.error_pct is None else round(self.error_pct, 2),
                "explanation": self.explanation}


@dataclass(frozen=True, kw_only=True)
class Comparison:
    model: str
    gpu: str
    tp: int
    figures: StartupFigures
    prediction: PlanResult
    gaps: list[Gap] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "gpu": self.gpu, "tp": self.tp, "log": self.figures.to_dict(),
                "gaps": [g.to_dict() for g in self.gaps], "prediction": self.prediction.to_dict()}

    def calibration_entry(self, log_name: str) -> dict[str, Any]:
        f = self.figures
        counted = self.prediction.weights_gb_per_gpu - self.prediction.load_overhead_gb
        return {"gpu": self.gpu, "tp": self.tp, "free_start_gib": f.free_start_gib,
                "load_overhead_gib": round(max(0.0, (f.weights_gib or counted) - counted), 3),
                "model": self.model, "log": log_name, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def resolve_gpu(figures: StartupFigures, gpu: str | None, gpu_mem_gib: float | None) -> GPUSpec:
    if gpu_mem_gib is not None:
        return custom_gpu(gpu_mem_gib, name=gpu or "custom")
    if gpu:
        return find_gpu(gpu)
    if figures.device_name:
        try:
            return find_gpu(figures.device_name)
        except KeyError:
            pass
    if figures.free_start_gib is None:
        raise ValueError("the log names no GPU and shows no free memory; pass --gpu or --gpu-mem-gib")
    gpu_spec = custom_gpu(round(figures.free_start_gib + 0.8, 2), name="from-log")
    return GPUSpec(**{**gpu_spec.__dict__, "free_tp1_gib": figures.free_start_gib + dist_overhead_gib(figures.tp)})


def compare(figures: StartupFigures, *, model: ModelArch | str | None = None, quant: str | None = None,
            gpu: str | None = None, gpu_mem_gib: float | None = None,
            sglang_version: str | None = None) -> Comparison:
    """Predict what the logged start-up should have shown and explain every gap."""
    implied_quant = None
    if model is None:
        path = figures.args.get("model_path")
        found = model_from_path(str(path)) if path else None
        if found is None:
            raise ValueError(f"cannot tell the model from the log (model_path={path!r}); "
                             "give it: sglfleet plan MODEL --from-log FILE")
        model, implied_quant = found
    logged_quant = figures.args.get("quantization")
    if quant is None and implied_quant is None and isinstance(logged_quant, str) and logged_quant != "None":
        implied_quant = logged_quant  # --quantization of the logged run
    arch = model if isinstance(model, ModelArch) else None
    spec = resolve_gpu(figures, gpu, gpu_mem_gib)
    tp = figures.tp
    pp = int(figures.args.get("pp_size") or 1)
    page = int(figures.args.get("page_size") or 1)
    kv_dtype = figures.args.get("kv_cache_dtype")
    kwargs: dict[str, Any] = {"gpu": spec, "tp": tp, "pp": pp, "dp": 1, "page_size": page,
                              "quant": quant or implied_quant, "sglang_version": sglang_version,
                              "kv_cache_dtype": kv_dtype if isinstance(kv_dtype, str) else None}
    pred = plan(arch if arch is not None else str(model), **kwargs)
    f = figures
    gaps: list[Gap] = []
    if f.free_start_gib is not None:
        d = pred.free_gb_at_start - f.free_start_gib
        if spec.name == "from-log":
            why = "the log names no GPU: its own free memory was used (pass --gpu to compare with the catalogue)"
        else:
            why = (f"the catalog assumes {spec.name} leaves {pred.free_gb_at_start:.2f} GiB free; this host had "
               f"{abs(d):.2f} GiB {'less' if d > 0 else 'more'}"
                   + (" (a display, other processes or a MIG/driver reserve hold memory)" if d > 0.3 else "")
                   + (f"; tp {tp} communication buffers took {f.dist_init_gib:.2f} GiB" if f.dist_init_gib else ""))
        gaps.append(Gap(figure="free memory at start (GiB)", predicted=pred.free_gb_at_start,
                        actual=f.free_start_gib, explanation=why))
    if f.weights_gib is not None:
        d = pred.weights_gb_per_gpu - f.weights_gib
        why = (f"counted {pred.params_b:.2f} B parameters as {pred.quant} plus {pred.load_overhead_gb:.2f} GiB "
               f"loader overhead; the loader used {abs(d):.2f} GiB {'less' if d > 0 else 'more'}")
        if abs(d) / max(f.weights_gib, 1e-9) > 0.05:
            why += " - a layer kind or storage format the planner does not model (check quantization and config)"
        gaps.append(Gap(figure="weights per GPU (GiB)", predicted=pred.weights_gb_per_gpu, actual=f.weights_gib,
                        explanation=why))
    if f.mem_fraction_static is not None:
        same = abs(pred.mem_fraction_static - f.mem_fraction_static) < 0.0015
        why = (f"SGLang {pred.sglang_version}'s default rule '{pred.mem_fraction_rule}' gives "
               f"{pred.mem_fraction_static:.3f}" + (
                   "" if same else "; the log ran with another value: it was set by hand, or another SGLang "
                   "version wrote the log (pass --sglang-version)"))
        gaps.append(Gap(figure="mem_fraction_static", predicted=pred.mem_fraction_static,
                        actual=f.mem_fraction_static, explanation=why))
    tokens = f.kv_tokens if f.kv_tokens is not None else f.max_total_num_tokens
    if tokens is not None:
        gaps.append(Gap(figure="KV tokens (planner's own inputs)", predicted=pred.max_total_num_tokens,
                        actual=tokens, explanation="the free-memory, weight and fraction gaps above, "
                        "through rest = free x fraction - weights"))
        if None not in (f.free_start_gib, f.weights_gib, f.mem_fraction_static):
            a = arch if arch is not None else _arch_of(str(model))
            cell = kv_layout(a, tp=tp, kv_cache_dtype=kwargs["kv_cache_dtype"]).pool_cell_bytes
            rule = kv_pool(free_start_gib=f.free_start_gib or 0.0, weights_gib=f.weights_gib or 0.0,
                           mem_fraction_static=f.mem_fraction_static or 0.0, pool_cell_bytes=cell, page_size=page)
            gaps.append(Gap(figure="KV tokens (the log's free memory, weights and fraction)",
                            predicted=rule.max_total_num_tokens, actual=tokens,
                            explanation="SGLang's pool rule alone; a gap here means a KV layout the planner "
                            "does not model (hybrid/SWA pools, draft layers, KV dtype)"))
    return Comparison(model=pred.model, gpu=spec.name, tp=tp, figures=f, prediction=pred, gaps=gaps)


def _arch_of(name: str) -> ModelArch:
    from sglfleet.planner.planning import resolve_model

    return resolve_model(name)[0]


# -- the calibration file -------------------------------------------------------------------
def load_calibration(path: Path | None = None) -> list[dict[str, Any]]:
    p = path or default_calibration_path()
    if not p.is_file():
        return []
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"calibration file {p} is not readable JSON: {exc}") from exc
    entries = data.get("entries") if isinstance(data, dict) else None
    return [e for e in entries or [] if isinstance(e, dict) and "gpu" in e]


def write_calibration(entry: dict[str, Any], path: Path | None = None) -> Path:
    """Add (or replace, for the same GPU and tp) one entry."""
    p = path or default_calibration_path()
    entries = [e for e in load_calibration(p) if (e.get("gpu"), e.get("tp")) != (entry["gpu"], entry["tp"])]
    entries.append(entry)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"version": 1, "entries": entries}, indent=2) + "\n", encoding="utf-8")
    return p


def calibration_for(entries: list[dict[str, Any]], gpu: str, tp: int) -> dict[str, Any] | None:
    """The entry for this GPU: same tp if there is one, else another tp with the free memory
    moved by the difference in communication buffers."""
    same_gpu = [e for e in entries if e.get("gpu") == gpu and isinstance(e.get("free_start_gib"), (int, float))]
    exact = [e for e in same_gpu if e.get("tp") == tp]
    if exact:
        return exact[-1]
    if not same_gpu:
        return None
    e = dict(same_gpu[-1])
    e["free_start_gib"] = e["free_start_gib"] + dist_overhead_gib(int(e.get("tp") or 1)) - dist_overhead_gib(tp)
    return e




# -- a managed engine's own figures ---------------------------------------------------------
def engine_startup(log_text: str, *, model: str, quant: str | None = None) -> dict[str, Any] | None:
    """What a managed SGLang engine logged at start-up next to the planner's prediction, for
    `/admin/models` and the dashboard. None when the log holds no start-up figures yet."""
    f = parse_startup_log(log_text)
    if f.free_start_gib is None and f.weights_gib is None and f.kv_tokens is None:
        return None
    tokens = f.kv_tokens if f.kv_tokens is not None else f.max_total_num_tokens
    actual = {"free_gb_at_start": f.free_start_gib, "weights_gb_per_gpu": f.weights_gib,
              "mem_fraction_static": f.mem_fraction_static, "max_total_num_tokens": tokens,
              "kv_cache_gb": f.kv_cache_gib}
    predicted: dict[str, Any] | None = None
    try:
        found = model_from_path(model)
        arch: ModelArch | str = found[0] if found else model
        cmp = compare(f, model=arch, quant=quant or (found[1] if found else None))
        p = cmp.prediction
        predicted = {"free_gb_at_start": p.free_gb_at_start, "weights_gb_per_gpu": p.weights_gb_per_gpu,
                     "mem_fraction_static": p.mem_fraction_static, "max_total_num_tokens": p.max_total_num_tokens,
                     "kv_cache_gb": p.kv_pool_gb}
    except (KeyError, ValueError, OSError):
        pass  # a model the planner has no config for: the real figures alone
    return {"actual": actual, "predicted": predicted}
