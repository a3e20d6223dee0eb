"""Gateway CPU per request of two (or more) sglfleet checkouts, side by side in one run.

    .venv/bin/python benchmarks/overhead/ab.py --variant base=/tmp/base/src --variant new= \
        [--concurrency 128] [--stream] [--rounds 3] [--requests 3000] [--router]

Each variant is `NAME=SRC`: `sglfleet serve` run with `PYTHONPATH=SRC` (a `src/` folder of another
checkout, e.g. `git worktree add /tmp/base HEAD~3`), or this checkout when SRC is empty. All of
them (and sglang-router with `--router`) sit in front of one `sglfleet sim`; the rounds are
interleaved, and the CPU time of each gateway process (user + system, from /proc) is divided by
the requests it answered. On a shared machine the ratio between variants of one run is what
to read, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import procs


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_variant(work: Path, upstream: str, name: str, src: str) -> procs.Proc:
    saved = os.environ.get("PYTHONPATH")
    if src:
        os.environ["PYTHONPATH"] = src
    try:
        return procs.start_sglfleet(work, upstream, name=name)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", required=True, metavar="NAME=SRC")
    ap.add_argument("--concurrency", type=int, default=128)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--router", action="store_true", help="sglang-router too (its benchmark virtualenv)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sglfleet-ab-"))
    sim = procs.start_sim(work, ["--ttft-ms", "5", "--itl-ms", "1", "--eos-rate", "0"])
    targets: dict[str, procs.Proc] = {}
    try:
        for spec in a.variant:
            name, _, src = spec.partition("=")
            targets[name] = start_variant(work, sim.url, name, src)
        if a.router:
            py = procs.ensure_venv("sglang-router", procs.ROUTER_SPEC, "import sglang_router", work / "pip.log")
            if py is not None:
                targets["sglang-router"] = procs.start_router(work, sim.url, py)
        bodies = loadgen.chat_bodies("bench", 64, 32, a.stream)
        totals = {name: [0.0, 0, 0.0] for name in targets}
        for r in range(a.rounds):
            for name, p in targets.items():
                url = p.url + "/v1/chat/completions"
                asyncio.run(loadgen.run_load(url, bodies, num_requests=200, concurrency=a.concurrency,
                                             stream=a.stream, max_s=10))  # warm-up
                c0 = cpu_s(p.proc.pid)
                res = asyncio.run(loadgen.run_load(url, bodies, num_requests=a.requests, concurrency=a.concurrency,
                                                   stream=a.stream, max_s=60))
                used = cpu_s(p.proc.pid) - c0
                ok = sum(rec.ok for rec in res.records)
                t = totals[name]
                t[0] += used
                t[1] += ok
                t[2] += res.wall_s
                print(f"round {r}  {name:14s} {ok}/{len(res.records)} ok  {ok / res.wall_s:6.0f} req/s  "
                      f"{1000 * used / max(ok, 1):.3f} ms CPU/req", flush=True)
        print()
        for name, (used, ok, wall) in totals.items():
            print(f"{name:14s} {ok / wall:6.0f} req/s  {1000 * used / max(ok, 1):.3f} ms CPU/req")
    finally:
        for p in targets.values():
            p.stop()
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
