"""The official openai SDK against the real gateway in front of the real embedded engine."""

from __future__ import annotations

import httpx

HTTP = httpx.Client(timeout=120)
import openai
import pytest

MODEL = "smollm2-135m"
MSGS = [{"role": "user", "content": "Name one color."}]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_models_list(embedded_url: str) -> None:
    models = client(embedded_url).models.list()
    (m,) = models.data
    assert m.id == MODEL and m.object == "model"
    raw = HTTP.get(embedded_url + "/v1/models").json()["data"][0]
    assert raw["root"] == "builtin:smollm2-135m" and raw["max_model_len"] == 4096


def test_chat_non_streaming(embedded_url: str) -> None:
    r = client(embedded_url).chat.completions.create(model=MODEL, messages=MSGS, max_tokens=5, temperature=0)
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    assert r.usage is not None and r.usage.completion_tokens <= 5 and r.usage.prompt_tokens > 0
    assert r.model == MODEL


def test_chat_streaming_with_usage(embedded_url: str) -> None:
    stream = client(embedded_url).chat.completions.create(
        model=MODEL, messages=MSGS, max_tokens=6, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert 1 <= last.usage.completion_tokens <= 6
    assert all(c.usage is None for c in chunks[:-1])
    # llama.cpp streams carry no usage: the gateway counts the prompt with the model's own
    # tokenizer and chat template; it must equal what the engine reports without streaming
    plain = client(embedded_url).chat.completions.create(model=MODEL, messages=MSGS, max_tokens=1)
    assert plain.usage is not None and last.usage.prompt_tokens == plain.usage.prompt_tokens > 0


def test_streaming_without_usage_has_no_usage_chunk(embedded_url: str) -> None:
    chunks = list(client(embedded_url).chat.completions.create(model=MODEL, messages=MSGS, max_tokens=3, stream=True))
    assert chunks and all(c.choices for c in chunks)


def test_max_completion_tokens_is_honoured(embedded_url: str) -> None:
    r = client(embedded_url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count from one to fifty in words."}],
        max_completion_tokens=4, temperature=0)  # greedy: no early end-of-sequence by chance
    assert r.usage is not None and r.usage.completion_tokens == 4
    assert r.choices[0].finish_reason == "length"


def test_completions_endpoint_and_seed_passthrough(embedded_url: str) -> None:
    c = client(embedded_url)
    a = c.completions.create(model=MODEL, prompt="The sky is", max_tokens=6, temperature=0.9, seed=7)
    b = c.completions.create(model=MODEL, prompt="The sky is", max_tokens=6, temperature=0.9, seed=7)
    assert a.choices[0].text == b.choices[0].text


def test_stop_sequence_passthrough(embedded_url: str) -> None:
    r = client(embedded_url).completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=20, stop=[","],
                                                 temperature=0)
    assert "," not in r.choices[0].text


async def test_async_client_concurrent_streams(embedded_url: str) -> None:
    import asyncio

    ac = openai.AsyncOpenAI(base_url=embedded_url + "/v1", api_key="unused", max_retries=0, timeout=120)

    async def one(i: int) -> str:
        s = await ac.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"Say {i}"}],
                                             max_tokens=4, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in s if c.choices])

    outs = await asyncio.gather(*(one(i) for i in range(3)))
    assert all(outs)
    await ac.close()


def test_request_id_round_trip(embedded_url: str) -> None:
    r = HTTP.post(embedded_url + "/v1/chat/completions", headers={"x-request-id": "trace-abc.123"},
                   json={"model": MODEL, "messages": MSGS, "max_tokens": 1})
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-abc.123"
    r = HTTP.get(embedded_url + "/health", headers={"x-request-id": "bad id\twith tab"})
    assert r.headers["x-request-id"] != "bad id\twith tab" and len(r.headers["x-request-id"]) == 32


def test_health_and_ready(embedded_url: str) -> None:
    assert HTTP.get(embedded_url + "/health").json() == {"status": "ok"}
    r = HTTP.get(embedded_url + "/ready")
    assert r.status_code == 200 and r.json()["models"][MODEL]["state"] == "READY"


@pytest.mark.parametrize("alias", [MODEL.upper()])
def test_model_names_are_case_insensitive(embedded_url: str, alias: str) -> None:
    r = client(embedded_url).chat.completions.create(model=alias, messages=MSGS, max_tokens=1)
    assert r.choices
