"""Issue 17's table, request by request, on both engines: the embedded llama.cpp engine and
the SGLang-shaped simulator, behind one real `sglfleet serve` (loopback only).

    PYTHONPATH=src python benchmarks/contracts/probe.py [--out results.json]

Each row sends the request a real client sends and prints what came back: the HTTP status and
a short verdict (`ok: ...` when the answer is correct, `400: ...` for a clear refusal,
`BAD: ...` otherwise). The before/after table of docs/notes comes from this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sglfleet.sim.config import SimConfig  # noqa: E402
from sglfleet.sim.process import SimProcess, find_free_ports  # noqa: E402
from tests.fleetproc import start_gateway  # noqa: E402

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
          "required": ["city", "temp"], "additionalProperties": False}
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
USER = {"role": "user", "content": "What is the weather in Paris?"}
LOOP = [USER, {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}]

Row = Callable[[httpx.Client, str], str]


def short(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else r.text
    except (ValueError, AttributeError):
        msg = r.text
    return f"{r.status_code}: {str(msg)[:110]}"


def chat(c: httpx.Client, model: str, **body: Any) -> httpx.Response:
    body.setdefault("messages", [USER])
    body.setdefault("max_tokens", 24)
    return c.post("/v1/chat/completions", json={"model": model, **body})


def sse_events(r: httpx.Response) -> list[dict[str, Any]]:
    out = []
    for block in r.text.split("\n\n"):
        if block.startswith("data: {"):
            out.append(json.loads(block[6:]))
    return out


def verdict(r: httpx.Response, check: Callable[[dict[str, Any]], str]) -> str:
    if r.status_code == 400:
        return short(r)
    if r.status_code != 200:
        return "BAD " + short(r)
    try:
        return check(r.json())
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not stop
        return f"BAD: {type(exc).__name__}: {exc}"[:140]


def content(d: dict[str, Any]) -> str:
    return d["choices"][0]["message"].get("content") or ""


def row_json_schema(c: httpx.Client, m: str) -> str:
    rf = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}
    r = chat(c, m, response_format=rf, max_tokens=60, temperature=0)

    def check(d: dict[str, Any]) -> str:
        jsonschema.validate(json.loads(content(d)), SCHEMA)
        return f"ok: {content(d)[:60]}"
    return verdict(r, check)


def row_parts(c: httpx.Client, m: str) -> str:
    r = chat(c, m, messages=[{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}])
    return verdict(r, lambda d: f"ok: {content(d)[:40]!r}")


def row_developer(c: httpx.Client, m: str) -> str:
    r = chat(c, m, messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    return verdict(r, lambda d: f"ok: {content(d)[:40]!r}")


def row_tool_loop(c: httpx.Client, m: str) -> str:
    r = chat(c, m, messages=LOOP, tools=[TOOL])
    return verdict(r, lambda d: f"ok: finish={d['choices'][0]['finish_reason']}")


def row_nulls(c: httpx.Client, m: str) -> str:
    r = chat(c, m, temperature=None, top_p=None, stop=None, seed=None, max_completion_tokens=None)
    return verdict(r, lambda d: f"ok: {content(d)[:40]!r}")


def row_completion_prompts(c: httpx.Client, m: str) -> str:
    out = []
    for prompt in ("", ["Once upon", "A cat"]):
        r = c.post("/v1/completions", json={"model": m, "prompt": prompt, "max_tokens": 8})
        out.append(verdict(r, lambda d: f"ok: {len(d['choices'])} choice(s)"))
    return " / ".join(out)


def row_bad_format(c: httpx.Client, m: str) -> str:
    r = chat(c, m, response_format={"type": "AAA"})
    return short(r) if r.status_code == 400 else "BAD " + short(r)


def row_n(c: httpx.Client, m: str) -> str:
    r = chat(c, m, n=2)

    def check(d: dict[str, Any]) -> str:
        idx = sorted(ch["index"] for ch in d["choices"])
        return f"ok: indexes {idx}" if idx == [0, 1] else f"BAD: indexes {idx}"
    return verdict(r, check)


def row_required(c: httpx.Client, m: str) -> str:
    r = chat(c, m, tools=[TOOL], tool_choice="required", max_tokens=60, temperature=0)

    def check(d: dict[str, Any]) -> str:
        calls = d["choices"][0]["message"].get("tool_calls") or []
        if not calls:
            return "BAD: no tool call"
        json.loads(calls[0]["function"]["arguments"])
        return f"ok: {calls[0]['function']['name']}({calls[0]['function']['arguments'][:30]})"
    return verdict(r, check)


def row_logprobs(c: httpx.Client, m: str) -> str:
    r = chat(c, m, logprobs=True, max_tokens=4)

    def check(d: dict[str, Any]) -> str:
        lp = d["choices"][0].get("logprobs")
        if not lp or not lp.get("content"):
            return f"BAD: logprobs {lp!r}"[:80]
        return f"ok: {len(lp['content'])} token logprobs"
    return verdict(r, check)


def row_long_stream(c: httpx.Client, m: str) -> str:
    text = "word " * 40_000
    out = []
    for stream in (False, True):
        r = chat(c, m, messages=[{"role": "user", "content": text}], stream=stream)
        out.append(("stream " if stream else "") + (short(r) if r.status_code != 200 else f"200 {r.text[:40]!r}"))
    return " / ".join(out)


def row_stream_tools(c: httpx.Client, m: str) -> str:
    r = chat(c, m, tools=[TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}},
             stream=True, max_tokens=40, temperature=0)
    if r.status_code != 200:
        return short(r)
    names = []
    for ev in sse_events(r):
        for ch in ev.get("choices") or []:
            for tc in (ch.get("delta") or {}).get("tool_calls") or []:
                if (tc.get("function") or {}).get("name"):
                    names.append(tc["function"]["name"])
    if not names:
        return "BAD: no streamed tool call"
    return f"ok: name in 1 delta ({names[0]})" if len(names) == 1 else f"BAD: name in {len(names)} deltas"


def row_retrieve(c: httpx.Client, m: str) -> str:
    r = c.get(f"/v1/models/{m}")
    return f"ok: {r.json().get('id')}" if r.status_code == 200 else "BAD " + short(r)


def row_tools_off(c: httpx.Client, m: str) -> str:
    r = chat(c, m + "-notools", tools=[TOOL])
    return short(r) if r.status_code == 400 else "BAD " + short(r)


def row_ollama(c: httpx.Client, m: str) -> str:
    out = []
    for name in (m + ":latest", "auto"):
        r = c.post("/api/chat", json={"model": name, "stream": False, "options": {"num_predict": 8},
                                      "messages": [{"role": "user", "content": "Hi"}]})
        out.append(f"{name}: " + (f"ok {r.json()['message']['content'][:20]!r}" if r.status_code == 200
                                  else "BAD " + short(r)))
    return " / ".join(out)


ROWS: list[tuple[str, Row]] = [
    ("response_format json_schema", row_json_schema),
    ("content as a list of parts", row_parts),
    ("role developer", row_developer),
    ("tool loop: assistant content null + tool_calls, then tool", row_tool_loop),
    ("explicit nulls (temperature: null ...)", row_nulls),
    ("/v1/completions prompt \"\" / a list of prompts", row_completion_prompts),
    ("response_format {type: AAA}", row_bad_format),
    ("n: 2", row_n),
    ("tool_choice: required", row_required),
    ("logprobs: true", row_logprobs),
    ("prompt longer than the context, plain / streamed", row_long_stream),
    ("streamed tool calls", row_stream_tools),
    ("GET /v1/models/{id}", row_retrieve),
    ("tools for a model with capabilities.tools false", row_tools_off),
    ("Ollama name:latest / model auto on /api/chat", row_ollama),
]


def fleet(sim_url: str) -> dict[str, Any]:
    smol = {"engine": "llamacpp", "n_threads": 2, "n_ctx": 2048}
    sim = {"engine": "sglang", "urls": [sim_url], "upstream_model": "sim"}
    return {"models": [
        {"name": "smol", **smol, "capabilities": {"tools": True}},
        {"name": "smol-notools", **smol},
        {"name": "simsg", **sim, "capabilities": {"tools": True}},
        {"name": "simsg-notools", **sim},
    ], "routes": [{"name": "auto", "default_route": "ANY", "routes": [{"name": "ANY", "target": "simsg"}]}]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    sim = SimProcess(SimConfig(fast=True, context_len=8192), port=find_free_ports(1)).start()
    gp = None
    try:
        gp = start_gateway(Path(tempfile.mkdtemp(prefix="contracts-")), fleet(sim.urls[0]), timeout=240)
        results: dict[str, dict[str, str]] = {}
        with httpx.Client(base_url=gp.url, timeout=120) as c:
            for label, fn in ROWS:
                results[label] = {}
                for engine, model in (("llamacpp", "smol"), ("sglang (sim)", "simsg")):
                    try:
                        results[label][engine] = fn(c, model)
                    except Exception as exc:  # noqa: BLE001
                        results[label][engine] = f"BAD: {type(exc).__name__}: {exc}"[:140]
                print(f"| {label} | {results[label]['llamacpp']} | {results[label]['sglang (sim)']} |", flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))
    finally:
        if gp is not None:
            gp.stop()
        sim.stop()


if __name__ == "__main__":
    main()
