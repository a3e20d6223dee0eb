"""Mid-stream migration on simulated SGLang workers: a worker that breaks off a stream after
50 tokens (`crash_after_tokens`) does not end the client's stream; another worker continues
it, and the text equals the uninterrupted answer exactly (the simulator's text is a function
of the prompt and the position). What cannot continue faithfully ends with an error event."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from sglfleet.sim import SimConfig, run_sim_workers
from tests.core.harness import Behaviour, gateway, sse_events

SIM = SimConfig(ttft_ms=5, itl_ms=1)
MESSAGES = [{"role": "user", "content": "write a long poem about the sea"}]


def parse(body: str) -> tuple[str, list[dict[str, Any]], list[str]]:
    """(content, chunks, raw data lines) of an SSE body."""
    events = sse_events(body)
    chunks = [orjson.loads(e) for e in events if e != "[DONE]"]
    text = "".join((c["choices"][0].get("delta", {}).get("content") or c["choices"][0].get("text") or "")
                   for c in chunks if c.get("choices"))
    return text, chunks, events


async def direct(url: str, path: str, body: dict[str, Any]) -> str:
    async with aiohttp.ClientSession() as s, s.post(url + path, json={"model": "sim", "stream": True, **body}) as r:
        assert r.status == 200
        return parse((await r.read()).decode())[0]


def migrations(fleet: Any, outcome: str) -> float:
    value = fleet.metrics.registry.get_sample_value("sglfleet_migrations_total", {"model": "m", "outcome": outcome})
    return value or 0.0


async def crashing_pair() -> Any:
    return run_sim_workers(SIM, n=2)


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
async def test_stream_continues_on_another_worker_with_identical_text(endpoint: str) -> None:
    async with run_sim_workers(SIM, n=2) as sims:
        sims.workers[0].faults.set(sims.workers[0].faults.config.updated({"crash_after_tokens": 50}))
        chat = endpoint == "chat"
        path = "/v1/chat/completions" if chat else "/v1/completions"
        body: dict[str, Any] = ({"messages": MESSAGES} if chat else {"prompt": "Once upon a time"})
        body |= {"max_tokens": 200, "temperature": 0}
        whole = await direct(sims.urls[1], path, body)
        assert len(whole.split()) == 200
        async with gateway(0, urls=sims.urls, access_log=True) as gw:
            r = await gw.client.post(path, json={"model": "m", "stream": True,
                                                 "stream_options": {"include_usage": True}, **body})
            assert r.status_code == 200
            text, chunks, events = parse(r.text)
            assert events[-1] == "[DONE]"
            assert not any("error" in c for c in chunks), chunks[-3:]
            assert text == whole  # every byte once, none lost
            assert migrations(gw.fleet, "migrated") == 1
            assert {c["id"] for c in chunks} == {chunks[0]["id"]}  # one id for the whole answer
            assert {c["model"] for c in chunks} == {chunks[0]["model"]}
            finishes = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")
                        and c["choices"][0].get("finish_reason")]
            assert finishes == ["length"]
            usages = [c["usage"] for c in chunks if c.get("usage")]
            assert len(usages) == 1 and usages[0]["completion_tokens"] == 200
            if chat:
                roles = [c for c in chunks if c.get("choices") and c["choices"][0]["delta"].get("role")]
                assert len(roles) == 1  # the continuation's role chunk is not repeated
            # the prompt tokens are the original prompt's, as if nothing had happened
            async with aiohttp.ClientSession() as s, s.post(sims.urls[1] + path, json={
                    "model": "sim", **body, "max_tokens": 1}) as direct_r:
                assert usages[0]["prompt_tokens"] == (await direct_r.json())["usage"]["prompt_tokens"]


@pytest.mark.parametrize("extra", [
    {"logprobs": True},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "required": ["title", "summary"],
        "properties": {"title": {"type": "string"}, "summary": {"type": "string"}}}}}},
    {"ebnf": "root ::= \"a\""},
])
async def test_what_cannot_continue_faithfully_ends_with_an_error_event(extra: dict[str, Any]) -> None:
    async with run_sim_workers(SIM, n=2) as sims:
        # 3 tokens: a structured answer (json_schema) is short
        sims.workers[0].faults.set(sims.workers[0].faults.config.updated({"crash_after_tokens": 3}))
        async with gateway(0, urls=sims.urls) as gw:
            r = await gw.chat("hi", stream=True, max_tokens=60, **extra)
            text, chunks, events = parse(r.text)
            assert events[-1] == "[DONE]" and "error" in chunks[-1]
            assert text and len([c for c in chunks if c.get("choices") and c["choices"][0].get("delta", {}).get(
                "content")]) == 3  # what was sent before the crash, once
            assert migrations(gw.fleet, "refused") == 1 and migrations(gw.fleet, "migrated") == 0


async def test_n_above_one_is_refused_and_a_stall_migrates() -> None:
    """On fake engines: a stream that stalls past the model's stall deadline moves to the other
    worker; with n=2 it ends with the error event as before."""
    async with gateway(2, model={"timeouts": {"stall_s": 0.3}}) as gw:
        gw.engines[0].behaviour = Behaviour(stall_after=2, chunks=6)
        r = await gw.chat("x", stream=True)
        _, chunks, events = parse(r.text)
        assert events[-1] == "[DONE]" and not any("error" in c for c in chunks)
        assert migrations(gw.fleet, "migrated") == 1
        cont = gw.engines[1].requests[-1]
        assert cont["continue_final_message"] is True and cont["messages"][-1] == {
            "role": "assistant", "content": "tok0 tok1 "}
        assert cont["max_tokens"] == 6  # 8 asked, 2 produced
        r = await gw.chat("x", stream=True, n=2)  # round robin: engine 0 again
        _, chunks, events = parse(r.text)
        assert "error" in chunks[-1] and migrations(gw.fleet, "refused") == 1


async def test_migration_disabled_per_model_and_limited() -> None:
    async with gateway(2, model={"timeouts": {"stall_s": 0.3}, "migration": {"max_attempts": 0}}) as gw:
        gw.engines[0].behaviour = Behaviour(stall_after=2, chunks=6)
        r = await gw.chat("x", stream=True)
        _, chunks, _ = parse(r.text)
        assert "error" in chunks[-1] and migrations(gw.fleet, "migrated") == 0
    async with gateway(2, model={"timeouts": {"stall_s": 0.3}, "migration": {"max_attempts": 1}}) as gw:
        for e in gw.engines:
            e.behaviour = Behaviour(stall_after=2, chunks=6)
        r = await gw.chat("x", stream=True)
        _, chunks, _ = parse(r.text)
        assert "error" in chunks[-1]
        assert migrations(gw.fleet, "migrated") == 1 and migrations(gw.fleet, "exhausted") == 1
