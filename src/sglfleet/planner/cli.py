"""`sglfleet plan` and `sglfleet launch`. Heavy modules are imported inside the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

EXIT_RULE_ERROR = 2
EXIT_NO_GPU = 1


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--set expects key=value, got {pair!r}")
        value = yaml.safe_load(raw) if raw else None
        # keep names like "a:b" or "0.0.0.0" as strings when YAML would reinterpret them
        out[key.strip()] = raw if isinstance(value, dict) else value
    return out


def _load_profile(source: str, role: str | None) -> tuple[Any, str]:
    """A preset name or a YAML file (a preset document or a bare profile mapping)."""
    import yaml

    from sglfleet.planner.presets import Preset, list_presets, load_preset
    from sglfleet.sglang.profile import SGLangProfile

    if source in list_presets():
        preset = load_preset(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise typer.BadParameter(f"{source!r} is neither a preset ({', '.join(list_presets())}) nor a file")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if "profile" not in data:
            return SGLangProfile.model_validate(data), "server"
        preset = Preset.model_validate({"name": path.stem, **data})
    profiles = preset.profiles()
    chosen = role or next(iter(profiles))
    if chosen not in profiles:
        raise typer.BadParameter(f"role {chosen!r} not in preset roles {sorted(profiles)}")
    return profiles[chosen], chosen


def plan_command(
    model: str | None = typer.Argument(None, help="Preset name, bundled model name (see `sglfleet presets`), "
                                       "or a directory with config.json. Optional with --from-log."),
    gpu: str | None = typer.Option(None, "--gpu", help="GPU from the catalog, e.g. L4, H100-SXM, RTX4090, MI300X."),
    gpu_mem_gib: float | None = typer.Option(None, "--gpu-mem-gib", help="Total GiB per GPU, for a GPU "
                                             "outside the catalog."),
    count: int | None = typer.Option(None, "--count", min=1, help="Number of GPUs (= tp x pp x dp)."),
    tp: int | None = typer.Option(None, "--tp", min=1, help="Tensor parallel size."),
    dp: int | None = typer.Option(None, "--dp", min=1, help="Data parallel size (replicas)."),
    pp: int | None = typer.Option(None, "--pp", min=1, help="Pipeline parallel size."),
    page_size: int | None = typer.Option(None, "--page-size", min=1, help="KV page size (tokens)."),
    context: int | None = typer.Option(None, "--context", min=1, help="Context length to plan for."),
    quant: str | None = typer.Option(None, "--quant", help="Weight format: bf16, fp8, int8, awq, gptq, mxfp4, nvfp4."),
    mem_fraction: float | None = typer.Option(None, "--mem-fraction", min=0.05, max=0.99),
    kv_cache_dtype: str | None = typer.Option(None, "--kv-cache-dtype", help="auto, fp8_e4m3, fp8_e5m2, ..."),
    free_gib: float | None = typer.Option(None, "--free-gib", "--free-gb", help="Free GiB per GPU at start "
                                          "(measured; a shared or desktop card)."),
    sglang_version: str | None = typer.Option(None, "--sglang-version", help="SGLang version whose default "
                                              "mem_fraction_static rule applies (default: the newest known)."),
    from_log: Path | None = typer.Option(None, "--from-log", help="An SGLang start-up log: print predicted "
                                         "against actual figures and explain each gap."),
    write_calibration: bool = typer.Option(False, "--write-calibration", help="With --from-log: save this "
                                           "host's free memory and loader overhead for later plans."),
    calibration: Path | None = typer.Option(None, "--calibration", help="Calibration file (default "
                                            "~/.config/sglfleet/planner-calibration.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Predict weights, KV cache and max_total_num_tokens for MODEL; say whether it fits."""
    from rich.console import Console

    from sglfleet.planner.planning import plan
    from sglfleet.planner.report import render_table

    if from_log is not None:
        _from_log(from_log, model=model, gpu=gpu, gpu_mem_gib=gpu_mem_gib, quant=quant,
                  sglang_version=sglang_version, write=write_calibration, calibration=calibration, as_json=as_json)
        return
    if model is None:
        _fail("give a MODEL (a preset, a bundled model - see `sglfleet presets` - or a directory), or --from-log")
    try:
        extra = {} if gpu_mem_gib is not None else _calibrated(calibration, gpu, tp or count or 1, free_gib)
        result = plan(model, gpu=gpu, count=count, context=context, quant=quant, mem_fraction=mem_fraction,
                      kv_cache_dtype=kv_cache_dtype, free_gib=extra.pop("free_gib", free_gib), tp=tp, dp=dp, pp=pp,
                      page_size=page_size, sglang_version=sglang_version, gpu_mem_gib=gpu_mem_gib, **extra)
    except (KeyError, ValueError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))
    if as_json:
        typer.echo(result.to_json())
    else:
        render_table(result, Console())


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_RULE_ERROR)


def _calibrated(path: Path | None, gpu: str | None, tp: int, free_gib: float | None) -> dict[str, Any]:
    """Planner arguments from this host's calibration file (nothing when none matches)."""
    from sglfleet.planner.calibration import calibration_for, default_calibration_path, load_calibration
    from sglfleet.planner.hardware import find_gpu

    if gpu is None:
        return {}
    entry = calibration_for(load_calibration(path), find_gpu(gpu).name, tp)
    if entry is None:
        return {}
    out: dict[str, Any] = {"calibrated_from": f"{path or default_calibration_path()} ({entry.get('log')})"}
    if free_gib is None:
        out["free_gib"] = float(entry["free_start_gib"])
    if isinstance(entry.get("load_overhead_gib"), (int, float)):
        out["load_overhead_gib"] = float(entry["load_overhead_gib"])
    return out


def _from_log(path: Path, *, model: str | None, gpu: str | None, gpu_mem_gib: float | None, quant: str | None,
              sglang_version: str | None, write: bool, calibration: Path | None, as_json: bool) -> None:
    from sglfleet.planner.calibration import compare, write_calibration
    from sglfleet.planner.logparse import parse_startup_log

    try:
        text = path.expanduser().read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")
    figures = parse_startup_log(text)
    if figures.free_start_gib is None and figures.weights_gib is None and figures.kv_tokens is None:
        _fail(f"{path} holds no SGLang start-up lines (Load weight begin/end, KV Cache is allocated)")
    try:
        cmp = compare(figures, model=model, quant=quant, gpu=gpu, gpu_mem_gib=gpu_mem_gib,
                      sglang_version=sglang_version)
    except (KeyError, ValueError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))
    written = None
    if write:
        if figures.free_start_gib is None:
            _fail("the log shows no free memory at start; nothing to calibrate")
        written = write_calibration(cmp.calibration_entry(path.name), calibration)
    if as_json:
        data = cmp.to_dict() | {"calibration_written": str(written) if written else None}
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    typer.echo(f"{cmp.model} on {cmp.tp} x {cmp.gpu} (tp {cmp.tp}), from {path.name}")
    for g in cmp.gaps:
        err = "" if g.error_pct is None else f" ({g.error_pct:+.1f} %)"
        pred = "-" if g.predicted is None else f"{g.predicted:,.3f}".rstrip("0").rstrip(".")
        act = "-" if g.actual is None else f"{g.actual:,.3f}".rstrip("0").rstrip(".")
        typer.echo(f"{g.figure:58} predicted {pred:>12}  actual {act:>12}{err}")
        typer.echo(f"    {g.explanation}")
    if written:
        typer.echo(f"calibration written to {written}; later `sglfleet plan --gpu {cmp.gpu}` runs on this "
                   "host use it")


def launch_command(
    source: str = typer.Argument(..., help="Preset name or a YAML profile file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command and the rule findings only."),
    sets: list[str] = typer.Option([], "--set", help="Override a profile field: key=value (repeatable)."),
    role: str | None = typer.Option(None, "--role", help="Preset role, e.g. prefill or decode."),
    docker: bool = typer.Option(False, "--docker", help="Render/run the lmsysorg/sglang docker line."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    gateway_port: int = typer.Option(8000, "--gateway-port",
                                     help="Without --docker: the supervising gateway's port."),
) -> None:
    """Render the SGLang launch command for a preset or file, check the flag rules, start it
    (under sglfleet's supervisor, behind its gateway; with --docker, as a container)."""
    import shlex

    from pydantic import ValidationError

    from sglfleet.sglang.profile import SGLangProfile
    from sglfleet.sglang.rules import HostInfo, check_profile

    profile, chosen = _load_profile(source, role)
    try:
        profile = SGLangProfile.model_validate(profile.model_dump() | _parse_sets(sets))
    except ValidationError as exc:
        typer.echo(f"error: invalid --set: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(EXIT_RULE_ERROR) from exc
    findings = check_profile(profile, host_info=None if dry_run else HostInfo.detect())
    errors = [f for f in findings if f.level == "error"]
    command = profile.to_docker_run() if docker else profile.to_argv()
    shown = command if not profile.api_key else [
        "***" if i and command[i - 1] == "--api-key" else a for i, a in enumerate(command)
    ]
    if as_json:
        typer.echo(json.dumps({"role": chosen, "argv": shown, "findings": [f.__dict__ for f in findings]}, indent=2))
    else:
        typer.echo(shlex.join(shown))
        for f in findings:
            typer.echo(f"{f.level}: {f.code}: {f.message}", err=True)
    if errors:
        raise typer.Exit(EXIT_RULE_ERROR)
    if dry_run:
        return
    _start(command, docker=docker, profile=profile, gateway_port=gateway_port)


def _start(command: list[str], *, docker: bool, profile: Any, gateway_port: int) -> None:
    import importlib.util
    import os
    import shutil

    from sglfleet.planner.hardware import detect

    host = detect()
    if not host.gpus:
        typer.echo("error: no NVIDIA GPU found on this host (NVML: "
                   f"{host.nvml_error or 'no devices'}); use --dry-run to only print the command", err=True)
        raise typer.Exit(EXIT_NO_GPU)
    if docker and shutil.which("docker") is None:
        typer.echo("error: docker is not installed on this host", err=True)
        raise typer.Exit(EXIT_NO_GPU)
    if not docker and importlib.util.find_spec("sglang") is None:
        typer.echo("error: the sglang package is not installed here; pip install sglang, or use --docker",
                   err=True)
        raise typer.Exit(EXIT_NO_GPU)
    if docker:
        os.execvp(command[0], command)  # docker itself supervises the container
    from sglfleet.api.cli import run_gateway
    from sglfleet.config import FleetConfig, GatewayConfig, ModelConfig

    name = (profile.served_model_name or Path(profile.model_path).name or "model").replace(":", "-")
    cfg = FleetConfig(gateway=GatewayConfig(port=gateway_port),
                      models=(ModelConfig(name=name, engine="sglang", sglang=profile,
                                          restart={"startup_timeout_s": 1800.0}),))
    typer.echo(f"supervising {name} behind http://127.0.0.1:{gateway_port}/v1 "
               "(restarts on crash or hang; Ctrl-C stops it)", err=True)
    raise typer.Exit(run_gateway(cfg))


def presets_command() -> None:
    """List the shipped SGLang deployment presets and the bundled model configs."""
    from sglfleet.planner.presets import hf_id, list_bundled_models, list_presets, load_preset

    typer.echo("presets (sglfleet plan/launch NAME, or `preset:` in a fleet file):")
    for name in list_presets():
        p = load_preset(name)
        typer.echo(f"  {name:38} {p.hardware.count}x {p.hardware.gpu:8} {p.description}")
    typer.echo("bundled models (sglfleet plan NAME --gpu ...):")
    for name in list_bundled_models():
        typer.echo(f"  {name:38} {hf_id(name)}")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
    app.command("launch")(launch_command)
    app.command("presets")(presets_command)
