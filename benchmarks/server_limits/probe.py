"""The server-limit probes of issue 16 against a real `sglfleet serve` with the DEFAULT
`gateway.limits`, in front of one simulated worker (loopback only). Stops by itself
(about 2 minutes, most of it the 60 s body timeout):

    PYTHONPATH=src .venv/bin/python benchmarks/server_limits/probe.py [--slowloris 500] [--idle 19000]

Probes: a 64 KB header; a 100 MB header; N sockets sending their head at 1 byte/s while a
normal request is sent every 0.5 s; a chunked body that never ends (a chunk every 0.5 s);
an upload aborted half-way; M idle connections at once (more than the connection cap), with
/health and a chat request every 0.5 s and the worker's health read at the end. Prints one
JSON object. The client needs M + ~100 open files (`ulimit -n`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sglfleet.sim import SimConfig, SimProcess, find_free_ports  # noqa: E402
from tests.fleetproc import GatewayProc, start_gateway  # noqa: E402

BODY = {"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hello there"}]}


async def _status(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> int:
    try:
        return (await client.request(method, url, **kw)).status_code
    except httpx.HTTPError:
        return -1


async def traffic(gp: GatewayProc, stop: asyncio.Event, every_s: float = 0.5) -> dict[str, Any]:
    """A chat request (new connection each time) every `every_s` until `stop`."""
    out: list[tuple[int, float]] = []
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        while not stop.is_set():
            t0 = time.monotonic()
            out.append((await _status(c, "POST", gp.url + "/v1/chat/completions", json=BODY),
                        time.monotonic() - t0))
            await asyncio.sleep(every_s)
    codes: dict[str, int] = {}
    for code, _ in out:
        codes[str(code)] = codes.get(str(code), 0) + 1
    return {"requests": len(out), "statuses": codes, "max_latency_s": round(max((d for _, d in out), default=0), 3)}


def header_64k(gp: GatewayProc) -> dict[str, Any]:
    r = httpx.get(gp.url + "/health", headers={"x-big": "a" * 65536}, timeout=10)
    return {"status": r.status_code, "body": r.json()}


def header_100mb(gp: GatewayProc) -> dict[str, Any]:
    proc = psutil.Process(gp.proc.pid)
    rss0 = proc.memory_info().rss
    s = socket.create_connection(("127.0.0.1", gp.port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: ")
    sent, t0, error = 0, time.monotonic(), None
    try:
        while sent < 100 << 20:
            s.sendall(b"a" * (1 << 20))
            sent += 1 << 20
    except OSError as exc:
        error = type(exc).__name__
    s.close()
    return {"sent_mb_before_cut": sent >> 20, "client_error": error, "cut_after_s": round(time.monotonic() - t0, 2),
            "gateway_rss_growth_mb": round((proc.memory_info().rss - rss0) / 2**20, 1)}


async def slowloris(gp: GatewayProc, n: int) -> dict[str, Any]:
    stop = asyncio.Event()
    normal = asyncio.create_task(traffic(gp, stop))
    t0 = time.monotonic()
    closed_at: list[float] = []

    async def one() -> None:
        r, w = await asyncio.open_connection("127.0.0.1", gp.port)
        w.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        try:
            while True:
                await w.drain()
                try:
                    if not await asyncio.wait_for(r.read(4096), 1.0):
                        break
                except TimeoutError:
                    w.write(b"x")  # one more header byte a second
        except OSError:
            pass
        closed_at.append(time.monotonic() - t0)
        w.close()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 120)
    stop.set()
    return {"sockets": n, "all_closed_after_s": round(max(closed_at), 2),
            "first_closed_after_s": round(min(closed_at), 2), "normal_traffic": await normal}


def chunked_endless(gp: GatewayProc) -> dict[str, Any]:
    s = socket.create_connection(("127.0.0.1", gp.port), timeout=0.5)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              b"transfer-encoding: chunked\r\n\r\n")
    t0, buf = time.monotonic(), b""
    while time.monotonic() - t0 < 180 and b"\r\n\r\n" not in buf:
        try:
            s.sendall(b"1\r\n \r\n")
            buf += s.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
    s.close()
    return {"status_line": buf.split(b"\r\n", 1)[0].decode(), "after_s": round(time.monotonic() - t0, 2),
            "body": buf.partition(b"\r\n\r\n")[2].decode()[:300]}


def aborted_upload(gp: GatewayProc) -> dict[str, Any]:
    s = socket.create_connection(("127.0.0.1", gp.port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-request-id: probe-abort\r\n"
              b"content-type: application/json\r\ncontent-length: 100000\r\n\r\n" + b" " * 1000)
    time.sleep(0.5)
    s.close()
    time.sleep(1.5)
    log = gp.log()
    return {"log_lines": [ln for ln in log.splitlines() if "probe-abort" in ln],
            "tracebacks_in_log": log.count("Traceback")}


async def idle_flood(gp: GatewayProc, n: int) -> dict[str, Any]:
    stop = asyncio.Event()
    normal = asyncio.create_task(traffic(gp, stop))
    health: list[int] = []

    async def probe_health() -> None:
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            while not stop.is_set():
                health.append(await _status(c, "GET", gp.url + "/health"))
                await asyncio.sleep(0.5)

    prober = asyncio.create_task(probe_health())
    gate = asyncio.Semaphore(500)
    t0 = time.monotonic()
    results: list[tuple[str, float]] = []

    async def one() -> None:
        async with gate:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", gp.port), 30)
            except (OSError, TimeoutError) as exc:
                results.append((f"connect:{type(exc).__name__}", time.monotonic() - t0))
                return
        try:
            data = await asyncio.wait_for(r.read(64), 120)
            kind = "503" if data.startswith(b"HTTP/1.1 503") else ("closed" if not data else "other")
        except (OSError, TimeoutError) as exc:
            kind = type(exc).__name__
        results.append((kind, time.monotonic() - t0))
        w.close()

    await asyncio.gather(*(one() for _ in range(n)))
    flood_s = time.monotonic() - t0
    await asyncio.sleep(2)
    stop.set()
    await prober
    kinds: dict[str, int] = {}
    for k, _ in results:
        kinds[k] = kinds.get(k, 0) + 1
    async with httpx.AsyncClient(timeout=10) as c:
        after = await _status(c, "POST", gp.url + "/v1/chat/completions", json=BODY)
        workers = (await c.get(gp.url + "/admin/workers")).json()
    return {"connections": n, "outcomes": kinds, "all_closed_after_s": round(flood_s, 2),
            "health_statuses": {str(s): health.count(s) for s in sorted(set(health))},
            "normal_traffic": await normal, "chat_after_flood": after, "workers_after": workers}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    sim = SimProcess(SimConfig(model_name="m", ttft_ms=5, itl_ms=2), port=find_free_ports(1), workers=1).start()
    tmp = Path(tempfile.mkdtemp(prefix="limits-probe-"))
    gp = start_gateway(tmp, {"models": [{"name": "m", "engine": "external", "urls": sim.urls}]})
    try:
        out: dict[str, Any] = {"header_64k": header_64k(gp), "header_100mb": header_100mb(gp),
                               "slowloris": await slowloris(gp, args.slowloris)}
        out["aborted_upload"] = aborted_upload(gp)
        out["chunked_endless"] = await asyncio.to_thread(chunked_endless, gp)
        if args.idle:
            out["idle_flood"] = await idle_flood(gp, args.idle)
        return out
    finally:
        gp.stop()
        sim.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slowloris", type=int, default=500)
    ap.add_argument("--idle", type=int, default=19000, help="idle connections at once (0: skip)")
    print(json.dumps(asyncio.run(amain(ap.parse_args())), indent=1))


if __name__ == "__main__":
    main()
