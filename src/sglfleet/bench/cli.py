"""`sglfleet bench`: serving benchmark for any OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

if TYPE_CHECKING:  # heavy modules load inside the command, not at `sglfleet --help`
    from rich.console import Console

    from sglfleet.bench.client import Target
    from sglfleet.bench.report import RunReport
    from sglfleet.bench.tokens import Tokenizer

ENV_API_KEY = ("SGLFLEET_API_KEY", "OPENAI_API_KEY")
DEFAULT_NUM_REQUESTS = {"long-context": 1, "multi-turn": 4}


def parse_header(text: str) -> tuple[str, str]:
    key, sep, value = text.partition(":")
    if not sep or not key.strip():
        raise typer.BadParameter(f"header {text!r}: use KEY:VALUE")
    return key.strip(), value.strip()


def parse_compare(spec: str) -> tuple[str | None, str, list[tuple[str, str]]]:
    """`[LABEL=]URL [Header:Value ...]` -> (label, url, headers)."""
    parts = spec.split()
    if not parts:
        raise typer.BadParameter("--compare needs a URL")
    first = parts[0]
    label = None
    if "=" in first and not first.startswith("http"):
        label, first = first.split("=", 1)
    return label, first, [parse_header(h) for h in parts[1:]]


def _label(url: str, taken: set[str]) -> str:
    base = urlsplit(url).netloc or url
    label, n = base, 2
    while label in taken:
        label, n = f"{base}#{n}", n + 1
    return label


def bench(
    base_url: str = typer.Option("http://127.0.0.1:8000", help="Server root or .../v1."),
    model: str = typer.Option(None, help="Model name; default: first id from /v1/models."),
    api_key: str = typer.Option(None, envvar=list(ENV_API_KEY), help="Bearer token."),
    endpoint: str = typer.Option("chat", help="chat | completions"),
    workload: str = typer.Option(
        "random", help="random | shared-prefix | long-context | multi-turn | file"
    ),
    num_requests: int = typer.Option(None, help="Requests (conversations) per target [16]."),
    concurrency: int = typer.Option(None, help="Max requests in flight per target."),
    request_rate: float = typer.Option(None, help="Poisson arrivals, requests/s per target."),
    burstiness: float = typer.Option(1.0, help="Gamma shape for arrivals (1 = Poisson)."),
    input_len: int = typer.Option(256, help="Prompt tokens (question tokens for multi-turn)."),
    output_len: int = typer.Option(None, help="max_tokens per request [128]."),
    range_ratio: float = typer.Option(1.0, help="Lengths drawn from [max(1,L*r), L] (SGLang)."),
    gsp_num_groups: int = typer.Option(4, help="shared-prefix: number of groups."),
    gsp_prompts_per_group: int = typer.Option(4, help="shared-prefix: prompts per group."),
    gsp_system_prompt_len: int = typer.Option(512, help="shared-prefix: shared prefix tokens."),
    gsp_question_len: int = typer.Option(64, help="shared-prefix: question tokens."),
    gsp_zipf_alpha: float = typer.Option(None, help="shared-prefix: zipf group skew alpha."),
    gsp_ordered: bool = typer.Option(False, help="shared-prefix: keep group order."),
    num_turns: int = typer.Option(3, help="multi-turn: user turns per conversation."),
    dataset_path: str = typer.Option(None, help="file: JSONL prompts or ShareGPT JSON."),
    tokenizer: str = typer.Option(None, help="GGUF path, or 'approx'; default: auto."),
    slo: str = typer.Option(None, help="Goodput SLOs, e.g. ttft=500ms,tpot=50ms,e2e=5s."),
    header: list[str] = typer.Option([], help="Extra header KEY:VALUE (repeatable)."),
    duration: float = typer.Option(None, help="Stop dispatching after this many seconds."),
    warmup: int = typer.Option(1, help="Warm-up requests per target (not measured)."),
    sweep: str = typer.Option(
        None, help="concurrency:1,2,4 | rate:0.5,1,2 | auto | auto:rate[:START[:MAX]] (find the knee)."
    ),
    max_goodput: bool = typer.Option(
        False, "--max-goodput", help="Bisect the request rate for the highest rate meeting --slo."
    ),
    attainment: float = typer.Option(0.9, help="--max-goodput: required SLO attainment (0-1)."),
    goodput_min_seconds: float = typer.Option(
        10.0, help="--max-goodput: each step sends max(N, rate x this) requests."
    ),
    repeat: int = typer.Option(1, help="Run the (interleaved) comparison N times: 95% CIs."),
    trace: str = typer.Option(None, help="Replay a Mooncake-style JSONL trace (timestamps kept)."),
    time_scale: float = typer.Option(1.0, help="--trace: multiply arrival offsets (0.5 = 2x faster)."),
    trace_block_size: int = typer.Option(512, help="--trace: tokens per hash id block."),
    scrape_metrics: bool = typer.Option(
        False, "--scrape-metrics", help="Read each target's Prometheus /metrics during runs."
    ),
    seed: int = typer.Option(42, help="Seed for workload and arrivals."),
    ignore_eos: bool = typer.Option(True, help="Send ignore_eos for fixed output lengths."),
    stream: bool = typer.Option(True, help="Stream responses (needed for TTFT/ITL)."),
    temperature: float = typer.Option(0.0, help="Sampling temperature."),
    compare: list[str] = typer.Option(
        [], help="Another target '[LABEL=]URL [Header:Value ...]' (repeatable)."
    ),
    label: str = typer.Option(None, help="Label of the --base-url target."),
    preset: str = typer.Option(None, help="seed-coding: the seed's 3 x 256 run + long context."),
    long_context_len: int = typer.Option(None, help="Preset long-context tokens (0 = skip)."),
    output_json: str = typer.Option(None, help="Write summary + per-request records here."),
    plot: str = typer.Option(None, help="Write latency CDFs and throughput PNG here."),
    html: str = typer.Option(None, help="Write a self-contained HTML report here."),
) -> None:
    """Benchmark an OpenAI-compatible server (SGLang bench_serving metric definitions)."""
    from rich.console import Console

    from sglfleet.bench import (
        findings,
        html_report,
        metrics,
        presets,
        report,
        runner,
        search,
        session,
        tokens,
        workloads,
    )
    from sglfleet.bench.client import Target
    from sglfleet.bench.trace import build_trace_workload, load_trace

    console = Console()
    if endpoint not in ("chat", "completions"):
        raise typer.BadParameter("--endpoint must be chat or completions")
    if workload not in workloads.WORKLOADS:
        raise typer.BadParameter(f"--workload must be one of {', '.join(workloads.WORKLOADS)}")
    if preset is not None and preset not in presets.PRESETS:
        raise typer.BadParameter(f"--preset must be one of {', '.join(presets.PRESETS)}")
    try:
        slo_ms = metrics.parse_slo(slo) if slo else None
        headers = tuple(parse_header(h) for h in header)
        if model is None:
            auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            model = asyncio.run(runner.discover_model(base_url, {**auth, **dict(headers)}))
        tok = tokens.load_tokenizer(tokenizer, model)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    common: dict[str, Any] = dict(model=model, endpoint=endpoint, api_key=api_key,
                                  stream=stream, ignore_eos=ignore_eos, temperature=temperature)
    taken: set[str] = set()
    main_label = label or _label(base_url, taken)
    taken.add(main_label)
    targets = [Target(label=main_label, base_url=base_url, headers=headers, **common)]
    for compare_spec in compare:
        c_label, url, c_headers = parse_compare(compare_spec)
        c_label = c_label or _label(url, taken)
        taken.add(c_label)
        targets.append(Target(label=c_label, base_url=url, headers=headers + tuple(c_headers),
                              **common))

    console.print(f"[dim]model {model}; tokenizer {tok.name}"
                  f"{'' if tok.is_exact else ' (lengths approximate)'}[/dim]")
    outcome = None
    try:
        if preset == "seed-coding":
            reports = _run_preset(console, targets, tok, seed, long_context_len, output_len,
                                  slo_ms)
        else:
            n = num_requests or DEFAULT_NUM_REQUESTS.get(workload, 16)
            if trace:
                if time_scale <= 0:
                    raise ValueError("--time-scale must be > 0")
                requests = build_trace_workload(
                    load_trace(trace), tok, block_size=trace_block_size, seed=seed,
                    num_requests=num_requests)
            else:
                spec = workloads.WorkloadSpec(
                    kind=workload, num_requests=n, input_len=input_len,
                    output_len=output_len or 128, range_ratio=range_ratio, seed=seed,
                    gsp_num_groups=gsp_num_groups, gsp_prompts_per_group=gsp_prompts_per_group,
                    gsp_system_prompt_len=gsp_system_prompt_len, gsp_question_len=gsp_question_len,
                    gsp_zipf_alpha=gsp_zipf_alpha, gsp_ordered=gsp_ordered, num_turns=num_turns,
                    dataset_path=dataset_path,
                    extra={"output_len_given": "1" if output_len else "0"},
                )
                requests = workloads.build_workload(spec, tok)
            shape = runner.default_shape(
                concurrency=concurrency, request_rate=request_rate,
                num_requests=None if duration else len(requests), duration_s=duration,
                warmup=warmup, seed=seed, burstiness=burstiness,
            )
            if trace:
                shape = replace(shape, replay=True, time_scale=time_scale)
            auto = search.parse_auto(sweep, concurrency, request_rate) if sweep else None
            steps = (runner.parse_sweep(sweep, shape) if sweep and auto is None
                     else [runner.Step(shape=shape)])
            plan = session.Plan(steps=steps, repeat=repeat, auto=auto, max_goodput=max_goodput,
                                attainment=attainment, max_goodput_start=request_rate or 1.0,
                                goodput_min_s=goodput_min_seconds,
                                slo_ms=slo_ms, scrape=scrape_metrics)
            outcome = asyncio.run(session.execute(plan, targets, requests, tok, console))
            reports = outcome.reports
            if outcome.base and outcome.ab is None:
                report.render_table(outcome.base, console, tok.name)
            findings.render(outcome, console)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    config = {
        "options": locals_for_config(
            base_url=report.redact_url(base_url), model=model, endpoint=endpoint, workload=workload,
            num_requests=num_requests, concurrency=concurrency, request_rate=request_rate,
            burstiness=burstiness, input_len=input_len, output_len=output_len,
            range_ratio=range_ratio, duration=duration, warmup=warmup, sweep=sweep, seed=seed,
            ignore_eos=ignore_eos, stream=stream, temperature=temperature, preset=preset,
            slo=slo, compare=[report.redact_spec(c) for c in compare] or None,
            header=[f"{k}:{report.redact_header(k, v)}" for k, v in headers] or None,
            dataset_path=dataset_path, repeat=repeat if repeat > 1 else None,
            max_goodput=max_goodput or None, attainment=attainment if max_goodput else None,
            trace=trace, time_scale=time_scale if trace else None,
            scrape_metrics=scrape_metrics or None),
        "tokenizer": tok.name,
        "tokenizer_exact": tok.is_exact,
    }
    document = report.build_json(reports, config)
    if outcome is not None:
        document.update(findings.to_json(outcome))
        document["base_runs"] = [i for i, r in enumerate(reports)
                                 if any(r is b for b in outcome.base)]
    if output_json:
        report.write_json(output_json, document)
        console.print(f"[dim]wrote {output_json}[/dim]")
    if html:
        html_report.write_html(html, document)
        console.print(f"[dim]wrote {html}[/dim]")
    if plot:
        report.write_plot(plot, reports)
        console.print(f"[dim]wrote {plot}[/dim]")
    base = outcome.base if outcome is not None else reports
    if any(r.summary.completed == 0 for r in base) or not any(r.summary.completed for r in reports):
        raise typer.Exit(1)


def locals_for_config(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def _run_preset(
    console: Console,
    targets: list[Target],
    tok: Tokenizer,
    seed: int,
    long_context_len: int | None,
    output_len: int | None,
    slo_ms: dict[str, float] | None,
) -> list[RunReport]:
    from sglfleet.bench import presets, report, runner, workloads

    parts = presets.seed_coding(seed, long_context_len, output_len)
    reports = []
    for part in parts:
        console.print(f"[bold]{part.name}[/bold]: {part.shape.describe()}, "
                      f"{part.workload.num_requests} x {part.workload.input_len} in / "
                      f"{part.workload.output_len} out tokens")
        requests = workloads.build_workload(part.workload, tok)
        part_reports = asyncio.run(runner.run_steps(
            targets, requests, [runner.Step(shape=part.shape, suffix=f" {part.name}")], tok,
            slo_ms=slo_ms, console=console))
        report.render_table(part_reports, console, tok.name)
        reports.extend(part_reports)
    n = len(targets)
    for i in range(n):
        smoke = reports[n + i] if len(reports) > n else None
        console.print(f"\n[bold]{targets[i].label}[/bold] in the seed's terms:")
        presets.print_seed_terms(console, reports[i], smoke)
    return reports


def register(app: typer.Typer) -> None:
    """Add the `bench` command to the root app."""
    app.command("bench")(bench)


if __name__ == "__main__":  # python -m sglfleet.bench.cli ...
    _app = typer.Typer(add_completion=False)
    register(_app)
    os.environ.setdefault("COLUMNS", "120")
    _app()
