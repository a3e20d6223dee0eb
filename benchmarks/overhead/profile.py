"""Profile a real `sglfleet serve` under streaming load with py-spy (sampling, attached by pid).

    .venv/bin/python benchmarks/overhead/profile.py [--concurrency 32] [--seconds 8] [--nostream]

py-spy lives in its own virtualenv (~/.cache/sglfleet-bench/venvs/tools). Prints the top
functions by own time and by total time, and leaves the collapsed stacks in the work dir.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import procs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--nostream", action="store_true")
    ap.add_argument("--policy", default="round_robin")
    ap.add_argument("--sim-args", default="--ttft-ms 5 --itl-ms 1")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--rate", type=int, default=250, help="samples per second")
    a = ap.parse_args()
    venv = procs.CACHE / "venvs" / "tools"
    spy = venv / "bin" / "py-spy"
    if not spy.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "py-spy"], check=True)
    work = Path(tempfile.mkdtemp(prefix="sglfleet-profile-"))
    sim = procs.start_sim(work, a.sim_args.split() + ["--eos-rate", "0"])
    gw = procs.start_sglfleet(work, sim.url, policy=a.policy)
    out = work / "stacks.txt"
    try:
        stream = not a.nostream
        bodies = loadgen.chat_bodies("bench", 64, 32, stream)
        rec = subprocess.Popen([str(spy), "record", "--pid", str(gw.proc.pid), "--duration", str(int(a.seconds)),
                                "--rate", str(a.rate), "--format", "raw", "--output", str(out), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res = asyncio.run(loadgen.run_load(gw.url + "/v1/chat/completions", bodies, num_requests=10**9,
                                           concurrency=a.concurrency, stream=stream, max_s=a.seconds + 1))
        rec.wait(30)
        ok = sum(r.ok for r in res.records)
        print(f"{ok / res.wall_s:.0f} req/s during the profile; stacks in {out}")
    finally:
        gw.stop()
        sim.stop()
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    n = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        c = int(count)
        frames = stack.split(";")
        n += c
        own[frames[-1]] += c
        for f in set(frames):
            total[f] += c
    print(f"\n{n} samples. Own time:")
    for f, c in own.most_common(a.top):
        print(f"{100 * c / n:5.1f}%  {f}")
    print("\nTotal time:")
    for f, c in total.most_common(a.top):
        print(f"{100 * c / n:5.1f}%  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
