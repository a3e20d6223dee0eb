"""Gateway overhead benchmark: direct vs sglfleet vs sglang-router vs vllm-router vs LiteLLM, interleaved.

    .venv/bin/python benchmarks/overhead/run.py            # full: c=32,128,256, stream + non-stream
    .venv/bin/python benchmarks/overhead/run.py --quick    # c=32 and 256, fewer requests

One fast upstream (`sglfleet sim`, 5 ms to first token, 1 ms per token by default) serves
every target. Each round runs every (mode, concurrency) cell against every target in an
order rotated per round, so background noise hits all targets alike. Peers live in their own
virtualenvs under ~/.cache/sglfleet-bench/venvs; a peer that cannot be installed is skipped
with the reason printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import procs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="c=32,256; 1 round; fewer requests")
    ap.add_argument("--concurrency", default="32,128,256")
    ap.add_argument("--modes", default="stream,nostream")
    ap.add_argument("--requests", type=int, default=600, help="requests per cell and round (at least 3x concurrency)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=10.0, help="cap per cell (slow peers)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--sim-args", default="--ttft-ms 5 --itl-ms 1", help="upstream timing (sglfleet sim flags)")
    ap.add_argument("--targets", default="direct,sglfleet,sglang-router,vllm-router,litellm")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                    help="an extra sglfleet target with extra `serve` args, e.g. 'sglfleet-w2=--workers 2'")
    ap.add_argument("--policy", default="round_robin", help="sglfleet routing policy")
    ap.add_argument("--json", type=Path, help="write raw results here")
    ap.add_argument("--markdown", type=Path, help="write the table here")
    a = ap.parse_args(argv)
    if a.quick:
        a.concurrency, a.requests, a.rounds = "32,256", 300, 1
    return a


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def start_targets(a: argparse.Namespace, workdir: Path) -> tuple[procs.Proc, list[procs.Proc], list[str]]:
    sim = procs.start_sim(workdir, a.sim_args.split() + ["--eos-rate", "0"])
    log(f"upstream: sim at {sim.url} ({a.sim_args})")
    wanted = [t.strip() for t in a.targets.split(",") if t.strip()]
    targets: list[procs.Proc] = []
    notes: list[str] = []
    if "direct" in wanted:
        targets.append(procs.Proc("direct", sim.proc, sim.url, sim.log_path, model="sim"))
    variants = [("sglfleet", "")] if "sglfleet" in wanted else []
    variants += [tuple(v.split("=", 1)) for v in a.variant]  # type: ignore[misc]
    for name, args in variants:
        targets.append(procs.start_sglfleet(workdir, sim.url, policy=a.policy, extra_args=args.split(), name=name))
        log(f"{name}: {targets[-1].url} {args}")
    for name, spec, module in (("sglang-router", procs.ROUTER_SPEC, "sglang_router"),
                               ("vllm-router", procs.VLLM_ROUTER_SPEC, "vllm_router")):
        if name not in wanted:
            continue
        py = procs.ensure_venv(name, spec, f"import {module}", workdir / "pip.log")
        if py is None:
            notes.append(f"{name} skipped: `pip install {spec}` failed (see {workdir}/pip.log)")
            continue
        try:
            targets.append(procs.start_router(workdir, sim.url, py, name=name))
            log(f"{name}: {targets[-1].url}")
        except (RuntimeError, TimeoutError) as exc:
            notes.append(f"{name} skipped: did not start: {str(exc)[:300]}")
    if "litellm" in wanted:
        py = procs.ensure_venv("litellm", procs.LITELLM_SPEC, "import litellm.proxy.proxy_server",
                               workdir / "pip.log")
        if py is None:
            notes.append(f"litellm skipped: `pip install {procs.LITELLM_SPEC}` failed (see {workdir}/pip.log)")
        else:
            try:
                targets.append(procs.start_litellm(workdir, sim.url, py))
                log(f"litellm: {targets[-1].url}")
            except (RuntimeError, TimeoutError) as exc:
                notes.append(f"litellm skipped: did not start: {str(exc)[:300]}")
    for n in notes:
        log(n)
    return sim, targets, notes


async def measure(a: argparse.Namespace, sim: procs.Proc, targets: list[procs.Proc]) -> list[dict]:
    concs = [int(c) for c in a.concurrency.split(",")]
    modes = [m.strip() for m in a.modes.split(",")]
    bodies = {(t.model, s): loadgen.chat_bodies(t.model, 64, a.max_tokens, s)
              for t in targets for s in (True, False)}
    for t in targets:  # warm-up: connections, JIT-less caches, lazy imports
        await loadgen.run_load(t.url + "/v1/chat/completions", bodies[(t.model, True)], num_requests=64,
                               concurrency=16, stream=True, max_s=20, api_key=t.api_key)
    cells: dict[tuple[str, str, int], dict] = {}
    for rnd in range(a.rounds):
        for mode in modes:
            stream = mode == "stream"
            for c in concs:
                shift = (rnd + concs.index(c)) % len(targets)
                order = targets[shift:] + targets[:shift]
                for t in order:
                    gw_cpu0, sim_cpu0 = t.cpu_s(), sim.cpu_s()
                    res = await loadgen.run_load(t.url + "/v1/chat/completions", bodies[(t.model, stream)],
                                                 num_requests=max(a.requests, 3 * c), concurrency=c, stream=stream,
                                                 max_s=a.max_seconds, api_key=t.api_key)
                    cell = cells.setdefault((t.name, mode, c), {"records": [], "wall_s": 0.0, "gw_cpu_s": 0.0,
                                                                "sim_cpu_s": 0.0, "rss_mb": 0.0, "load": []})
                    cell["records"] += res.records
                    cell["wall_s"] += res.wall_s
                    if t.name != "direct":
                        cell["gw_cpu_s"] += t.cpu_s() - gw_cpu0
                        cell["rss_mb"] = max(cell["rss_mb"], t.rss_mb())
                    cell["sim_cpu_s"] += sim.cpu_s() - sim_cpu0
                    cell["load"].append(os.getloadavg()[0])
                    ok = sum(r.ok for r in res.records)
                    log(f"round {rnd + 1} {mode:8} c={c:<3} {t.name:14} {ok / res.wall_s:8.1f} req/s "
                        f"({len(res.records)} req, {len(res.records) - ok} errors)")
                    await asyncio.sleep(0.5)  # let sockets settle between cells
    return [summarise(name, mode, c, cell) for (name, mode, c), cell in cells.items()]


def summarise(name: str, mode: str, c: int, cell: dict) -> dict:
    recs = cell["records"]
    ok = [r for r in recs if r.ok]
    n = len(recs)
    errors = sorted({r.error[:160] for r in recs if not r.ok})
    return {
        "target": name, "mode": mode, "concurrency": c, "requests": n, "errors": n - len(ok),
        "error_samples": errors[:3], "wall_s": cell["wall_s"],
        "req_s": len(ok) / cell["wall_s"], "tok_s": sum(r.tokens for r in ok) / cell["wall_s"],
        "ttft_p50_ms": loadgen.pct([r.ttft_s for r in ok], 0.5) * 1000,
        "ttft_p99_ms": loadgen.pct([r.ttft_s for r in ok], 0.99) * 1000,
        "e2e_p50_ms": loadgen.pct([r.e2e_s for r in ok], 0.5) * 1000,
        "e2e_p99_ms": loadgen.pct([r.e2e_s for r in ok], 0.99) * 1000,
        "gw_cpu_ms_per_req": cell["gw_cpu_s"] * 1000 / max(n, 1) if name != "direct" else None,
        "sim_cpu_ms_per_req": cell["sim_cpu_s"] * 1000 / max(n, 1),
        "gw_rss_mb": cell["rss_mb"] if name != "direct" else None,
        "load_avg": sum(cell["load"]) / len(cell["load"]),
    }


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "–" if v is None else format(v, spec)


def table(rows: list[dict], order: list[str]) -> str:
    head = ("| mode | conc | target | req/s | tok/s | TTFT p50 / p99 ms | E2E p50 / p99 ms | errors "
            "| gw CPU ms/req | gw RSS MB | load avg |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    key = {n: i for i, n in enumerate(order)}
    for r in sorted(rows, key=lambda r: (r["mode"] != "stream", r["concurrency"], key.get(r["target"], 99))):
        lines.append(f"| {r['mode']} | {r['concurrency']} | {r['target']} | {r['req_s']:.0f} | {r['tok_s']:.0f} "
                     f"| {r['ttft_p50_ms']:.1f} / {r['ttft_p99_ms']:.1f} | {r['e2e_p50_ms']:.1f} / "
                     f"{r['e2e_p99_ms']:.1f} | {r['errors']}/{r['requests']} | {fmt(r['gw_cpu_ms_per_req'], '.2f')} "
                     f"| {fmt(r['gw_rss_mb'], '.0f')} | {r['load_avg']:.2f} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    by = {(r["target"], r["mode"], r["concurrency"]): r for r in rows}
    out = []
    for (t, mode, c), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if not t.startswith("sglfleet"):
            continue
        d = by.get(("direct", mode, c))
        rt = by.get(("sglang-router", mode, c))
        ll = by.get(("litellm", mode, c))
        parts = [f"{t} {mode} c={c}:"]
        if d:
            parts.append(f"{r['req_s'] / d['req_s']:.0%} of direct req/s")
            if mode == "stream":
                parts.append(f"TTFT p50 +{r['ttft_p50_ms'] - d['ttft_p50_ms']:.1f} ms over direct")
        if rt:
            parts.append(f"{r['req_s'] / rt['req_s']:.2f}x sglang-router")
        if ll and ll["req_s"] > 0:
            parts.append(f"{r['req_s'] / ll['req_s']:.1f}x LiteLLM")
        out.append(" ".join(parts[:1]) + " " + ", ".join(parts[1:]))
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    workdir = Path(tempfile.mkdtemp(prefix="sglfleet-overhead-"))
    log(f"logs and configs in {workdir}; load average at start {os.getloadavg()}")
    started: list[procs.Proc] = []
    t0 = time.time()
    try:
        sim, targets, notes = start_targets(a, workdir)
        started = [sim, *[t for t in targets if t.name != "direct"]]
        rows = asyncio.run(measure(a, sim, targets))
    finally:
        for p in reversed(started):
            p.stop()
    order = [t.name for t in targets]
    md = table(rows, order)
    cmd = "python benchmarks/overhead/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"`{cmd.strip()}` — upstream `sglfleet sim {a.sim_args}`, {a.max_tokens} tokens/request, "
              f"{a.rounds} round(s) interleaved, load avg {os.getloadavg()[0]:.2f} at end, "
              f"{time.time() - t0:.0f} s")
    text = "\n".join([header, "", md, "", *[f"- {v}" for v in verdicts(rows)], *[f"- {n}" for n in notes]])
    print(text)
    if a.markdown:
        a.markdown.write_text(text + "\n")
    if a.json:
        a.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "rows": rows,
                                      "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
