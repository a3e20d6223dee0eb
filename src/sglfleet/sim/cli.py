"""`sglfleet sim`: serve simulated SGLang workers on consecutive ports.

Flag names are the `SimConfig` / `FaultConfig` field names with dashes, and their defaults
are the dataclass defaults (`process.config_to_args` relies on that).
"""

from __future__ import annotations

import typer

from sglfleet.sim.config import FaultConfig, SimConfig

_D = SimConfig()
_F = FaultConfig()
_COST = "Cost model"
_FAULT = "Faults"
_PD = "Prefill/decode"


def sim(
    port: int = typer.Option(31000, help="Port of the first worker; the others follow."),
    workers: int = typer.Option(1, min=1, help="Number of simulated workers."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    role: str = typer.Option(_D.role, help="both | prefill | decode.", rich_help_panel=_PD),
    model_name: str = typer.Option(_D.model_name, help="Served model id."),
    seed: int = typer.Option(_D.seed, help="Seed for output text and faults."),
    cache_tokens: int = typer.Option(_D.cache_tokens, help="KV pool size in tokens."),
    max_running: int = typer.Option(_D.max_running, help="Max running requests per worker."),
    context_len: int = typer.Option(_D.context_len, help="Context length in tokens."),
    max_prefill_tokens: int = typer.Option(
        _D.max_prefill_tokens,
        rich_help_panel=_COST,
        help="Prompt tokens admitted per prefill step.",
    ),
    default_max_tokens: int = typer.Option(
        _D.default_max_tokens, help="Output tokens when a request sets none."
    ),
    eos_rate: float = typer.Option(_D.eos_rate, help="Per-token chance of EOS (not ignore_eos)."),
    prefill_base_ms: float = typer.Option(_D.prefill_base_ms, rich_help_panel=_COST),
    prefill_ms_per_token: float = typer.Option(_D.prefill_ms_per_token, rich_help_panel=_COST),
    decode_step_ms: float = typer.Option(_D.decode_step_ms, rich_help_panel=_COST),
    decode_ms_per_req: float = typer.Option(_D.decode_ms_per_req, rich_help_panel=_COST),
    kv_transfer_ms_per_token: float = typer.Option(
        _D.kv_transfer_ms_per_token, rich_help_panel=_COST
    ),
    time_scale: float = typer.Option(
        _D.time_scale, rich_help_panel=_COST, help="Multiply every simulated delay (0 = no delay)."
    ),
    ttft_ms: float | None = typer.Option(
        None,
        rich_help_panel=_COST,
        help="Fixed time to first token (no batching).",
    ),
    itl_ms: float | None = typer.Option(
        None,
        rich_help_panel=_COST,
        help="Fixed inter-token latency (no batching).",
    ),
    page_size: int = typer.Option(_D.page_size, help="KV page size in tokens (SGLang's --page-size)."),
    kv_events_config: str | None = typer.Option(
        None,
        help="Publish KV events (SGLang's JSON, e.g. "
        "'{\"publisher\":\"zmq\",\"endpoint\":\"tcp://*:5557\",\"replay_endpoint\":\"tcp://*:5657\"}'); "
        "worker i adds i to both ports.",
    ),
    fast: bool = typer.Option(False, help="Answer at once, no engine (gateway benchmarks)."),
    bootstrap_port: int | None = typer.Option(
        None,
        rich_help_panel=_PD,
        help="Extra bootstrap port of worker 0.",
    ),
    bootstrap_timeout_s: float = typer.Option(_D.bootstrap_timeout_s, rich_help_panel=_PD),
    memory_mb: int = typer.Option(_D.memory_mb, help="RAM held (released by /release_memory_occupation)."),
    release_ms: float = typer.Option(_D.release_ms, rich_help_panel=_COST),
    resume_ms: float = typer.Option(_D.resume_ms, rich_help_panel=_COST),
    error_rate: float = typer.Option(_F.error_rate, rich_help_panel=_FAULT),
    error_codes: str = typer.Option("500", rich_help_panel=_FAULT, help="e.g. 500,503,429"),
    spike_rate: float = typer.Option(_F.spike_rate, rich_help_panel=_FAULT),
    spike_ms: float = typer.Option(_F.spike_ms, rich_help_panel=_FAULT),
    hang: bool = typer.Option(False, rich_help_panel=_FAULT, help="Never answer."),
    crash_after_tokens: int | None = typer.Option(None, rich_help_panel=_FAULT),
    crash_mode: str = typer.Option(_F.crash_mode, rich_help_panel=_FAULT, help="drop | exit"),
    slow_start_s: float = typer.Option(_F.slow_start_s, rich_help_panel=_FAULT),
    flap_period_s: float = typer.Option(_F.flap_period_s, rich_help_panel=_FAULT),
) -> None:
    """Serve simulated SGLang workers (synthetic output, for tests and capacity planning)."""
    try:
        faults = FaultConfig(
            error_rate=error_rate,
            error_codes=tuple(int(c) for c in error_codes.split(",") if c.strip()),
            spike_rate=spike_rate,
            spike_ms=spike_ms,
            hang=hang,
            crash_after_tokens=crash_after_tokens,
            crash_mode=crash_mode,  # type: ignore[arg-type]
            slow_start_s=slow_start_s,
            flap_period_s=flap_period_s,
        )
        config = SimConfig(
            model_name=model_name,
            role=role,  # type: ignore[arg-type]
            seed=seed,
            cache_tokens=cache_tokens,
            max_running=max_running,
            context_len=context_len,
            max_prefill_tokens=max_prefill_tokens,
            default_max_tokens=default_max_tokens,
            eos_rate=eos_rate,
            prefill_base_ms=prefill_base_ms,
            prefill_ms_per_token=prefill_ms_per_token,
            decode_step_ms=decode_step_ms,
            decode_ms_per_req=decode_ms_per_req,
            kv_transfer_ms_per_token=kv_transfer_ms_per_token,
            time_scale=time_scale,
            ttft_ms=ttft_ms,
            itl_ms=itl_ms,
            page_size=page_size,
            kv_events_config=kv_events_config,
            fast=fast,
            bootstrap_port=bootstrap_port,
            bootstrap_timeout_s=bootstrap_timeout_s,
            memory_mb=memory_mb,
            release_ms=release_ms,
            resume_ms=resume_ms,
            faults=faults,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    from sglfleet.sim.runner import run_blocking

    run_blocking(config, n=workers, base_port=port, host=host)


def register(app: typer.Typer) -> None:
    app.command("sim")(sim)
