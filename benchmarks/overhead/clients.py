"""The upstream HTTP client alone: CPU per request of aiohttp (as the gateway configured it),
sglfleet's own `upstream/http1.py`, and pyreqwest (Rust/tokio) when available, against one
`sglfleet sim`, interleaved.

    .venv/bin/python benchmarks/overhead/clients.py [--requests 3000] [--concurrency 32] [--rounds 2]

pyreqwest is looked for in ~/.cache/sglfleet-bench/pyreqwest (never in sglfleet's environment):
    .venv/bin/pip install --target ~/.cache/sglfleet-bench/pyreqwest pyreqwest
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs

from sglfleet.upstream import http1

PYREQWEST = procs.CACHE / "pyreqwest"
HEADERS = {"content-type": "application/json", "x-sglfleet-request-id": "0" * 32}

Send = Callable[[], Awaitable[int]]


def body(stream: bool) -> bytes:
    return orjson.dumps({"model": "sim", "max_tokens": 32, "ignore_eos": True, "stream": stream,
                         "messages": [{"role": "user", "content": "a prompt of a few words " * 4}]})


async def aiohttp_client(url: str, data: bytes, stream: bool) -> tuple[Send, Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
                                    skip_auto_headers=("User-Agent",), cookie_jar=aiohttp.DummyCookieJar())
    timeout = aiohttp.ClientTimeout(total=600, sock_connect=5)

    async def send() -> int:
        resp = await session.post(url + "/v1/chat/completions", data=data, headers=HEADERS, timeout=timeout)
        n = 0
        if stream:
            async for piece in resp.content.iter_any():
                n += len(piece)
        else:
            n = len(await resp.read())
        resp.release()
        return n

    return send, session.close


async def http1_client(url: str, data: bytes, stream: bool) -> tuple[Send, Callable[[], Awaitable[None]]]:
    client = http1.Client()

    async def send() -> int:
        resp = await client.post(url, "/v1/chat/completions", data, HEADERS)
        n = 0
        if stream:
            async for piece in resp:
                n += len(piece)
        else:
            n = len(await resp.read())
        resp.release()
        return n

    return send, client.close


async def pyreqwest_client(url: str, data: bytes, stream: bool) -> tuple[Send, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder  # type: ignore[import-not-found]

    client = ClientBuilder().build()

    async def send() -> int:
        n = 0
        async with client.post(url + "/v1/chat/completions").headers(HEADERS).body_bytes(data) \
                .build_streamed() as resp:
            reader = resp.body_reader
            while (piece := await reader.read_chunk()) is not None:
                n += len(piece)
        return n

    return send, client.close


async def measure(make: Callable[..., Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]], url: str,
                  stream: bool, requests: int, concurrency: int) -> tuple[float, float]:
    send, close = await make(url, body(stream), stream)
    left = iter(range(64))

    async def worker() -> None:
        for _ in left:
            assert await send() > 0

    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up: connections open
    left = iter(range(requests))
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    return cpu / requests * 1000, requests / wall


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    clients: dict[str, Callable[..., Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]]] = {
        "aiohttp": aiohttp_client, "sglfleet http1": http1_client}
    if PYREQWEST.exists():
        sys.path.insert(0, str(PYREQWEST))
        clients["pyreqwest"] = pyreqwest_client
    else:
        print(f"(pyreqwest skipped: not in {PYREQWEST}; see the docstring)")
    work = Path(tempfile.mkdtemp(prefix="sglfleet-clients-"))
    sim = procs.start_sim(work, ["--ttft-ms", "5", "--itl-ms", "1", "--eos-rate", "0"])
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    try:
        for r in range(a.rounds):
            for stream in (False, True):
                names = list(clients)
                names = names[r % len(names):] + names[:r % len(names)]  # order rotated per round
                for name in names:
                    res = uvloop.run(measure(clients[name], sim.url, stream, a.requests, a.concurrency))
                    results.setdefault((name, stream), []).append(res)
    finally:
        sim.stop()
    print(f"\n{a.requests} requests per cell, c={a.concurrency}, {a.rounds} rounds, 32 tokens; client process CPU\n")
    print("| client | mode | CPU ms/request | req/s |\n|---|---|---|---|")
    for (name, stream), rows in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cpu = statistics.median(x[0] for x in rows)
        rps = statistics.median(x[1] for x in rows)
        print(f"| {name} | {'stream' if stream else 'nostream'} | {cpu:.3f} | {rps:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
