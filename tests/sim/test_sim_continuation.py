"""The simulator's text is a function of the prompt and the position, so a continued
generation (the answer so far sent back) equals the uninterrupted one; and SGLang's memory
saver routes (release / resume, with tags) put the worker to sleep and wake it."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from sim_helpers import QUICK, StartSim

from sglfleet.sim import SimConfig
from sglfleet.sim.tokenizer import split_answer

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "write a poem"}]


async def _text(http: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any]) -> str:
    async with http.post(url + path, json={"model": "sim", "stream": True, **body}) as resp:
        assert resp.status == 200, await resp.text()
        raw = (await resp.read()).decode()
    import orjson

    out = []
    for line in raw.splitlines():
        if line.startswith("data: {"):
            choice = orjson.loads(line[6:])["choices"]
            if choice:
                out.append(choice[0].get("text") or choice[0].get("delta", {}).get("content") or "")
    return "".join(out)


def test_split_answer_reads_trailing_output_words() -> None:
    assert split_answer("tell me sim-1 sim-22 ") == ("tell me", 2)
    assert split_answer("tell me sim-1x") == ("tell me sim-1x", 0)
    assert split_answer("sim-5") == ("", 1)
    assert split_answer("<|im_start|>assistant") == ("<|im_start|>assistant", 0)


async def test_chat_continuation_equals_the_uninterrupted_answer(start_sim: StartSim,
                                                                 http: aiohttp.ClientSession) -> None:
    sim = await start_sim(QUICK, n=2)
    whole = await _text(http, sim.urls[0], "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 40})
    assert len(whole.split()) == 40
    head = " ".join(whole.split()[:15])
    rest = await _text(http, sim.urls[1], "/v1/chat/completions", {
        "messages": [*MESSAGES, {"role": "assistant", "content": head}], "continue_final_message": True,
        "add_generation_prompt": False, "max_tokens": 25})
    assert head + rest == whole
    other = await _text(http, sim.urls[1], "/v1/chat/completions",
                        {"messages": [{"role": "user", "content": "another prompt"}], "max_tokens": 40})
    assert other != whole  # a function of the prompt, not a fixed string


async def test_completion_continuation_equals_the_uninterrupted_answer(start_sim: StartSim,
                                                                       http: aiohttp.ClientSession) -> None:
    sim = await start_sim(SimConfig(time_scale=0.1, eos_rate=0.02), n=1)
    prompt = "once upon a time"
    whole = await _text(http, sim.url, "/v1/completions", {"prompt": prompt, "max_tokens": 60})
    words = whole.split()
    assert 0 < len(words) <= 60 and whole.startswith(" ")  # completions continue the prompt's text
    cut = max(1, len(words) // 2)
    head = "".join(" " + w for w in words[:cut])
    rest = await _text(http, sim.url, "/v1/completions", {"prompt": prompt + head, "max_tokens": 60 - cut})
    assert head + rest == whole  # eos included: it is a function of the position too


async def test_release_and_resume_memory_occupation(start_sim: StartSim, http: aiohttp.ClientSession) -> None:
    sim = await start_sim(SimConfig(time_scale=0.1, memory_mb=8, release_ms=100, resume_ms=500), n=1)
    url = sim.url
    async with http.post(url + "/release_memory_occupation", json={"tags": ["kv_cache"]}) as r:
        assert r.status == 200 and await r.json() is None
    assert sim.workers[0].memory.released == ["kv_cache"]
    async with http.get(url + "/health") as r:
        assert r.status == 503
    async with http.post(url + "/v1/completions", json={"model": "sim", "prompt": "x", "max_tokens": 2}) as r:
        assert r.status == 503 and "memory released" in (await r.json())["message"]
    async with http.post(url + "/release_memory_occupation", json={"tags": ["bogus"]}) as r:
        assert r.status == 400
    async with http.post(url + "/release_memory_occupation") as r:  # no body: every region
        assert r.status == 200
    assert sim.workers[0].memory.released == ["weights", "kv_cache"]
    t0 = time.perf_counter()
    async with http.post(url + "/resume_memory_occupation", json={}) as r:
        assert r.status == 200
    assert time.perf_counter() - t0 >= 0.05  # resume_ms x time_scale
    async with http.get(url + "/health") as r:
        assert r.status == 200
    async with http.post(url + "/v1/completions", json={"model": "sim", "prompt": "x", "max_tokens": 2}) as r:
        assert r.status == 200
