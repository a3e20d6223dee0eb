"""Routing policies at scale on simulated SGLang workers (issues 7 and 20).

One command, stops by itself (about 4-6 minutes on a 2-core machine):

    .venv/bin/python benchmarks/routing_at_scale/run.py [--sizes 16,64] [--output-json out.json]

Issue 20 defaults: Poisson arrivals (`--arrival poisson --rate R` per size) instead of a
fixed number in flight, sims with `--page-size 16` publishing KV events (`kv_events`
subscribes to them), and the peer `sglang-router` (its `cache_aware`, PyPI
`sglang-router==0.3.2` in its own venv, see benchmarks/overhead/procs.py) on the same trace.
`--arrival closed --concurrency 32,64 --page-size 1` gives issue 7's setup.

For each fleet size N: one `sglfleet sim` process hosts N workers (loopback, cost model of
docs/sim.md, a finite `--cache-tokens` KV pool per worker, `--time-scale`); then for each
policy a fresh `sglfleet serve` (engine `external`, the N sim URLs) routes the same
shared-prefix workload (SGLang generated-shared-prefix: 256 groups, Zipf group skew, a
long shared system text + a short question as one user message, short outputs) at a fixed
number of requests in flight. Before every pass the sims' caches are flushed, so every
policy starts cold; the policy order is rotated between sizes.

Per pass it reports:
  * cache hit rate = delta sglang:cached_tokens_total / delta sglang:prompt_tokens_total,
    summed over the N sims' /metrics (the same ratio as SGLang's cache_hit_rate);
  * TTFT p50/p99 (client, first content chunk) and throughput (requests/s, output tok/s);
  * load imbalance from the gateway's /metrics: max/mean of sglfleet_worker_processed at
    the end, and the time-average of max/mean sglfleet_worker_inflight sampled every 0.2 s;
  * the oracle bound (see `oracle`): the best token hit rate any router could reach with
    the fleet's total KV capacity on this exact request sequence.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sglfleet.bench.tokens import ApproxTokenizer
from sglfleet.bench.workloads import BenchRequest, WorkloadSpec, build_workload
from sglfleet.sim import SimConfig, SimProcess, find_free_ports
from tests.fleetproc import start_gateway

sys.path.insert(0, str(ROOT / "benchmarks" / "overhead"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import procs  # noqa: E402  (the peers' venvs and launchers)
from oracle import oracle  # noqa: E402

POLICIES = ("round_robin", "least_load", "power_of_two", "cache_aware", "session", "kv_events", "sglang-router")
DEFAULT_POLICIES = "round_robin,cache_aware,cache_aware+slack4,kv_events,sglang-router"
MODEL = "sim"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------- client

async def one(session: aiohttp.ClientSession, url: str, req: BenchRequest, policy: str) -> dict[str, Any]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": req.turns[0]}],
            "max_tokens": req.output_tokens, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    headers = {"x-session-id": f"group-{req.group}"} if policy.startswith("session") else {}
    t0 = time.perf_counter()
    ttft = None
    usage: dict[str, Any] = {}
    status = 0
    try:
        async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
            status = resp.status
            async for raw in resp.content:
                if not raw.startswith(b"data:") or raw.startswith(b"data: [DONE]"):
                    continue
                chunk = json.loads(raw[5:])
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for ch in chunk.get("choices") or []:
                    if ttft is None and (ch.get("delta") or {}).get("content"):
                        ttft = time.perf_counter() - t0
    except (TimeoutError, aiohttp.ClientError) as exc:
        return {"ok": False, "error": repr(exc)}
    return {"ok": status == 200 and ttft is not None, "status": status, "ttft_s": ttft,
            "e2e_s": time.perf_counter() - t0, "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)}


async def sample_inflight(session: aiohttp.ClientSession, url: str, stop: asyncio.Event,
                          out: list[list[float]]) -> None:
    while not stop.is_set():
        try:
            async with session.get(url + "/metrics") as r:
                text = await r.text()
            vals = [float(v) for v in re.findall(r"^sglfleet_worker_inflight\{[^}]*\} ([\d.e+-]+)$", text, re.MULTILINE)]
            if vals:
                out.append(vals)
        except aiohttp.ClientError:
            pass
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except TimeoutError:
            pass


async def drive(url: str, reqs: list[BenchRequest], concurrency: int, policy: str) -> dict[str, Any]:
    conn = aiohttp.TCPConnector(limit=concurrency + 4)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=300)) as s:
        queue: asyncio.Queue[BenchRequest] = asyncio.Queue()
        for r in reqs:
            queue.put_nowait(r)
        recs: list[dict[str, Any]] = []

        async def worker() -> None:
            while not queue.empty():
                recs.append(await one(s, url, queue.get_nowait(), policy))

        stop = asyncio.Event()
        samples: list[list[float]] = []
        sampler = asyncio.create_task(sample_inflight(s, url, stop, samples))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        duration = time.perf_counter() - t0
        stop.set()
        await sampler
        return {"records": recs, "duration_s": duration, "inflight_samples": samples}


async def drive_poisson(url: str, reqs: list[BenchRequest], rate: float, policy: str,
                        seed: int) -> dict[str, Any]:
    """Open loop: request i starts at the i-th arrival of a Poisson process of `rate` per second."""
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, len(reqs))
    starts = np.cumsum(gaps) - gaps[0]
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=600)) as s:
        stop = asyncio.Event()
        samples: list[list[float]] = []
        sampler = asyncio.create_task(sample_inflight(s, url, stop, samples)) if policy != "sglang-router" else None
        t0 = time.perf_counter()

        async def at(t: float, r: BenchRequest) -> dict[str, Any]:
            await asyncio.sleep(max(0.0, t0 + t - time.perf_counter()))
            return await one(s, url, r, policy)

        recs = await asyncio.gather(*(at(float(t), r) for t, r in zip(starts, reqs, strict=True)))
        duration = time.perf_counter() - t0
        stop.set()
        if sampler is not None:
            await sampler
        return {"records": list(recs), "duration_s": duration, "inflight_samples": samples}


async def sim_counters(session: aiohttp.ClientSession, urls: list[str]) -> dict[str, Any]:
    tot: dict[str, Any] = {"cached": 0.0, "prompt": 0.0, "requests": {}}

    async def one_url(u: str) -> None:
        async with session.get(u + "/metrics") as r:
            text = await r.text()
        for name, key in (("sglang:cached_tokens_total", "cached"), ("sglang:prompt_tokens_total", "prompt"),
                          ("sglang:num_requests_total", "requests")):
            m = re.search(rf"^{re.escape(name)}\{{[^}}]*\}} ([\d.e+-]+)$", text, re.MULTILINE)
            if m and key == "requests":
                tot[key][u] = float(m.group(1))
            elif m:
                tot[key] += float(m.group(1))

    await asyncio.gather(*(one_url(u) for u in urls))
    return tot


async def flush(session: aiohttp.ClientSession, urls: list[str]) -> None:
    async def one_url(u: str) -> None:
        async with session.post(u + "/flush_cache?timeout=10") as r:
            if r.status != 200:
                raise RuntimeError(f"flush {u}: {r.status} {await r.text()}")

    await asyncio.gather(*(one_url(u) for u in urls))


async def sim_call(urls: list[str], fn: Any) -> Any:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        return await fn(s, urls)


def gateway_processed(url: str) -> dict[str, float]:
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    out = {}
    for m in re.finditer(r'^sglfleet_worker_processed\{[^}]*worker="([^"]+)"[^}]*\} ([\d.e+-]+)$', text, re.MULTILINE):
        out[m.group(1)] = float(m.group(2))
    lookups = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^sglfleet_cache_aware_lookups_total\{[^}]*result="(\w+)"[^}]*\} ([\d.e+-]+)$', text, re.MULTILINE)}
    return {"processed": out, "lookups": lookups}  # type: ignore[return-value]


def _order(policy: str) -> tuple[int, str]:
    base = policy.partition("+")[0]
    return (POLICIES.index(base) if base in POLICIES else len(POLICIES), policy)


def policy_config(policy: str) -> dict[str, Any]:
    """`cache_aware+slack4+cpw16384` = cache_aware with affinity_slack 4 and
    max_chars_per_worker 16384; `kv_events+w2+b1.5` = kv_events with overlap_weight 2 and
    balance_ratio 1.5."""
    name, *variants = policy.split("+")
    cfg: dict[str, Any] = {"policy": name}
    cache: dict[str, int] = {}
    kv: dict[str, Any] = {"tokenizer": "sim"}
    for v in variants:
        if v.startswith("slack"):
            cache["affinity_slack"] = int(v[5:])
        elif v.startswith("cpw"):  # cache_aware.max_chars_per_worker
            cache["max_chars_per_worker"] = int(v[3:])
        elif v.startswith("w"):  # kv_events.overlap_weight
            kv["overlap_weight"] = float(v[1:])
        elif v.startswith("b"):  # kv_events.balance_ratio
            kv["balance_ratio"] = float(v[1:])
    if cache:
        cfg["cache_aware"] = cache
    if name == "kv_events":
        cfg["kv_events"] = kv
    return cfg


def start_target(policy: str, n: int, urls: list[str], workdir: Path, router_py: Path | None) -> Any:
    """A gateway for sglfleet's policies; sglang-router (cache_aware, its defaults) for the peer."""
    if policy == "sglang-router":
        assert router_py is not None
        port, prom = procs.free_port(), procs.free_port()
        argv = [str(router_py), "-m", "sglang_router.launch_router", "--host", "127.0.0.1", "--port", str(port),
                "--worker-urls", *urls, "--policy", "cache_aware", "--log-level", "warn",
                "--prometheus-host", "127.0.0.1", "--prometheus-port", str(prom)]
        d = workdir / f"{n}-{policy}"
        d.mkdir(parents=True, exist_ok=True)
        p = procs.spawn("sglang-router", argv, f"http://127.0.0.1:{port}", d, env=procs.LOCAL_ONLY_ENV)
        procs.wait_serving(p)
        return p
    cfg = {"gateway": {"host": "127.0.0.1"},
           "models": [{"name": MODEL, "engine": "external", "urls": urls, **policy_config(policy)}]}
    return start_gateway(workdir / f"{n}-{policy}", cfg, timeout=60)


def run_pass(policy: str, n: int, urls: list[str], reqs: list[BenchRequest], load: float, workdir: Path,
             args: argparse.Namespace, router_py: Path | None) -> dict[str, Any]:
    asyncio.run(sim_call(urls, flush))
    before = asyncio.run(sim_call(urls, sim_counters))
    load_before = loadavg()
    target = start_target(policy, n, urls, workdir, router_py)
    gm: dict[str, Any] = {"processed": {}, "lookups": {}}
    try:
        if policy.startswith("kv_events"):
            time.sleep(1.0)  # subscriptions open on the first request; give the sockets a moment
        if args.arrival == "poisson":
            res = asyncio.run(drive_poisson(target.url, reqs, load, policy, args.seed))
        else:
            res = asyncio.run(drive(target.url, reqs, int(load), policy))
        if policy != "sglang-router":
            gm = gateway_processed(target.url)
            gm["prediction"] = prediction_error(target.url)
    finally:
        target.stop()
    after = asyncio.run(sim_call(urls, sim_counters))
    recs = res["records"]
    ok = [r for r in recs if r["ok"]]
    ttft = np.array([r["ttft_s"] * 1000 for r in ok]) if ok else np.zeros(1)
    d_cached, d_prompt = after["cached"] - before["cached"], after["prompt"] - before["prompt"]
    proc = np.array([after["requests"][u] - before["requests"].get(u, 0.0) for u in urls])
    ratios = [max(s) / (sum(s) / len(s)) for s in res["inflight_samples"] if sum(s) > 0]
    return {
        "n_workers": n, "policy": policy, "completed": len(ok), "failed": len(recs) - len(ok),
        "duration_s": res["duration_s"], "req_per_s": len(ok) / res["duration_s"],
        "out_tok_per_s": sum(r["completion_tokens"] for r in ok) / res["duration_s"],
        "ttft_p50_ms": float(np.percentile(ttft, 50)), "ttft_p90_ms": float(np.percentile(ttft, 90)),
        "ttft_p99_ms": float(np.percentile(ttft, 99)),
        "hit_rate": d_cached / d_prompt if d_prompt else None,
        "client_hit_rate": sum(r["cached_tokens"] for r in ok) / max(1, sum(r["prompt_tokens"] for r in ok)),
        "processed_max_over_mean": float(proc.max() / proc.mean()) if proc.mean() else None,
        "workers_used": int((proc > 0).sum()),
        "inflight_max_over_mean": float(np.mean(ratios)) if ratios else None,
        "inflight_samples": len(res["inflight_samples"]),
        "lookups": gm["lookups"], "prediction": gm.get("prediction"),
        "load_before": load_before, "load_after": loadavg(),
    }


def prediction_error(url: str) -> dict[str, float]:
    """sglfleet_cache_prediction_error_tokens: sum, count and the share of exact predictions."""
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for key in ("sum", "count"):
        m = re.search(rf"^sglfleet_cache_prediction_error_tokens_{key}\{{[^}}]*\}} ([\d.e+-]+)$", text, re.MULTILINE)
        out[key] = float(m.group(1)) if m else 0.0
    m0 = re.search(r'^sglfleet_cache_prediction_error_tokens_bucket\{[^}]*le="0.0"[^}]*\} ([\d.e+-]+)$', text,
                   re.MULTILINE)
    if m0 and out["count"]:
        out["exact_share"] = float(m0.group(1)) / out["count"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16,64")
    ap.add_argument("--policies", default=DEFAULT_POLICIES)
    ap.add_argument("--groups", type=int, default=256)
    ap.add_argument("--per-group", type=int, default=4, help="requests = groups x per-group")
    ap.add_argument("--zipf-alpha", type=float, default=1.1)
    ap.add_argument("--system-len", type=int, default=1024)
    ap.add_argument("--question-len", type=int, default=32)
    ap.add_argument("--output-len", type=int, default=8)
    ap.add_argument("--cache-tokens", type=int, default=4096, help="KV pool per simulated worker")
    ap.add_argument("--page-size", type=int, default=16, help="sim KV page size (= KV event block size)")
    ap.add_argument("--time-scale", type=float, default=4.0, help="sim delays x this (slower = less CPU-bound)")
    ap.add_argument("--arrival", choices=("poisson", "closed"), default="poisson")
    ap.add_argument("--rate", default="40,100", help="poisson: requests/s, one value per size")
    ap.add_argument("--concurrency", default="32,64", help="closed: requests in flight, one value per size")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", default="/tmp/sglfleet-bench-routing-at-scale")
    ap.add_argument("--output-json")
    args = ap.parse_args()

    sizes = [int(x) for x in args.sizes.split(",")]
    loads = [float(x) for x in (args.rate if args.arrival == "poisson" else args.concurrency).split(",")]
    loads += [loads[-1]] * (len(sizes) - len(loads))
    policies = args.policies.split(",")
    spec = WorkloadSpec(kind="shared-prefix", gsp_num_groups=args.groups, gsp_prompts_per_group=args.per_group,
                        gsp_system_prompt_len=args.system_len, gsp_question_len=args.question_len,
                        output_len=args.output_len, gsp_zipf_alpha=args.zipf_alpha, seed=args.seed)
    reqs = build_workload(spec, ApproxTokenizer())
    counts = np.bincount([r.group for r in reqs], minlength=args.groups)  # type: ignore[misc]
    print(f"workload: {len(reqs)} requests, {args.groups} groups (zipf {args.zipf_alpha}: "
          f"{(counts > 0).sum()} used, top group {counts.max()} requests), system {args.system_len} "
          f"+ question {args.question_len} words, output {args.output_len}; sim cache {args.cache_tokens} "
          f"tokens/worker, page {args.page_size}, time scale {args.time_scale}; {args.arrival} arrivals; "
          f"load {loadavg()}", flush=True)
    workdir = Path(args.workdir)
    router_py = None
    if "sglang-router" in policies:
        router_py = procs.ensure_venv("sglang-router", procs.ROUTER_SPEC, "import sglang_router", workdir / "pip.log")
        if router_py is None:
            print(f"sglang-router skipped: `pip install {procs.ROUTER_SPEC}` failed (see {workdir}/pip.log)")
            policies.remove("sglang-router")
    rows: list[dict[str, Any]] = []
    oracles: dict[int, dict[str, Any]] = {}
    for si, (n, load) in enumerate(zip(sizes, loads, strict=True)):
        orc = oracle(reqs, n, args.cache_tokens, args.page_size)
        oracles[n] = orc
        unit = "req/s Poisson" if args.arrival == "poisson" else "in flight"
        print(f"\nN={n} {load:g} {unit}: oracle bound {orc['hit_rate_bound']:.1%} "
              f"({orc['slots']} prefix slots for {orc['distinct_groups']} groups; infinite cache "
              f"{orc['infinite_cache_bound']:.1%})", flush=True)
        base = find_free_ports(3 * n)  # one block: HTTP, KV events, replay (no overlap between them)
        kv = json.dumps({"publisher": "zmq", "endpoint": f"tcp://127.0.0.1:{base + n}",
                         "replay_endpoint": f"tcp://127.0.0.1:{base + 2 * n}"})
        cfg = SimConfig(cache_tokens=args.cache_tokens, time_scale=args.time_scale, seed=args.seed,
                        page_size=args.page_size, kv_events_config=kv)
        order = policies[si % len(policies):] + policies[: si % len(policies)]
        with SimProcess(cfg, port=base, workers=n) as sim:
            urls = list(sim.urls)
            for policy in order:
                row = run_pass(policy, n, urls, reqs, load, workdir, args, router_py)
                row["load"] = load
                rows.append(row)
                print(f"  {policy:18s} hit {row['hit_rate']:.1%} (client {row['client_hit_rate']:.1%})  "
                      f"TTFT p50 {row['ttft_p50_ms']:.0f} p90 {row['ttft_p90_ms']:.0f} ms  "
                      f"{row['req_per_s']:.1f} req/s  processed max/mean {row['processed_max_over_mean']:.2f}  "
                      f"failed {row['failed']}  {row['duration_s']:.1f}s  pred {row['prediction']}  "
                      f"load {row['load_after']}", flush=True)
    print("\n| N | policy | cache hit rate | oracle bound | vs oracle | TTFT p50 | TTFT p90 | req/s | output tok/s "
          "| processed max/mean | mean abs. prediction error (tokens) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["n_workers"], _order(r["policy"]))):
        o = oracles[r["n_workers"]]
        pred = r.get("prediction") or {}
        perr = f"{pred['sum'] / pred['count']:.0f}" if pred.get("count") else "-"
        print(f"| {r['n_workers']} | {r['policy']} | {r['hit_rate']:.1%} | {o['hit_rate_bound']:.1%} "
              f"| {r['hit_rate'] / o['hit_rate_bound']:.2f}x | {r['ttft_p50_ms']:.0f} ms | {r['ttft_p90_ms']:.0f} ms "
              f"| {r['req_per_s']:.1f} | {r['out_tok_per_s']:.0f} | {r['processed_max_over_mean']:.2f} | {perr} |")
    print(f"\nload average (1/5/15 min) at end: {loadavg()}")
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(
            {"args": vars(args), "oracles": oracles, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
