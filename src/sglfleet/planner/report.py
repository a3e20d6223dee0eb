"""Render a `PlanResult` as a rich table (default) or JSON (`--json`)."""

from __future__ import annotations

import shlex

from rich.console import Console
from rich.table import Table

from sglfleet.planner.planning import PlanResult

_VERDICT_STYLE = {"fits": "green", "fits_smaller_context": "yellow", "does_not_fit": "red"}


def render_table(result: PlanResult, console: Console) -> None:
    table = Table(title=f"{result.model} on {result.gpu_count} x {result.gpu} (tp {result.tp})",
                  show_header=False, title_justify="left")
    table.add_column("item", style="bold")
    table.add_column("value")
    rows = [
        ("weights / GPU", f"{result.weights_gb_per_gpu:.2f} GiB ({result.quant}, {result.params_b:.1f} B params)"),
        ("draft weights / GPU", f"{result.draft_weights_gb_per_gpu:.2f} GiB"),
        ("KV bytes / token / GPU", f"{result.kv_bytes_per_token:,} (pool cell {result.pool_cell_bytes:,})"),
        ("state / sequence / GPU", f"{result.state_bytes_per_seq:,} B"),
        ("free at start", f"{result.free_gb_at_start:.2f} GiB"),
        ("mem_fraction_static", f"{result.mem_fraction_static:.3f} ({result.mem_fraction_rule})"),
        ("reserved (activations, graphs)", f"{result.reserved_gb:.2f} GiB"),
        ("KV pool / GPU", f"{result.kv_pool_gb:.2f} GiB"),
        ("max_total_num_tokens", f"{result.max_total_num_tokens:,}"),
        (f"sequences at {result.context:,}", str(result.max_concurrent_at_context)),
    ]
    if result.draft_weights_gb_per_gpu == 0:
        rows.pop(1)
    for key, value in rows:
        table.add_row(key, value)
    style = _VERDICT_STYLE[result.verdict]
    table.add_row("verdict", f"[{style}]{result.verdict}[/{style}]")
    console.print(table)
    for reason in result.reasons:
        console.print(f"- {reason}")
    if result.assumptions:
        console.print("assumptions:")
        for item in result.assumptions:
            console.print(f"  * {item}", highlight=False)
    for finding in result.findings:
        colour = "red" if finding["level"] == "error" else "yellow"
        console.print(f"[{colour}]{finding['level']}[/{colour}] {finding['code']}: {finding['message']}")
    console.print("\n" + shlex.join(result.argv), soft_wrap=True, highlight=False)
