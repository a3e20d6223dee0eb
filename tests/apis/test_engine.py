"""The three APIs against the real embedded default (`sglfleet serve` with no fleet file:
SmolLM2 on llama.cpp for chat, the same GGUF in llama.cpp's embedding mode for embeddings),
with the official clients."""

from __future__ import annotations

import math
from typing import Any

import anthropic
import ollama
import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.fleetproc import GatewayProc

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CHAT, EMBED = "smollm2-135m", "smollm2-135m-embed"
GREEDY: Any = {"temperature": 0, "seed": 1}
WEATHER: Any = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def claude(gp: GatewayProc) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gp.url, api_key="unused", max_retries=0, timeout=120)


def oai(gp: GatewayProc) -> openai.OpenAI:
    return openai.OpenAI(base_url=gp.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_messages_stream_equals_create(smol: GatewayProc) -> None:
    kw: Any = {"model": CHAT, "max_tokens": 8, "messages": [{"role": "user", "content": "Name a colour."}],
               "system": "Answer in one word.", "extra_body": GREEDY}
    whole = claude(smol).messages.create(**kw)
    assert whole.stop_reason in ("max_tokens", "end_turn") and whole.content[0].type == "text"
    assert 0 < whole.usage.output_tokens <= 8
    with claude(smol).messages.stream(**kw) as stream:
        final = stream.get_final_message()
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        b.model_dump(exclude_none=True) for b in whole.content]
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_count_tokens_matches_the_engines_count(smol: GatewayProc) -> None:
    kw: Any = {"model": CHAT, "messages": [{"role": "user", "content": "How many tokens is this prompt?"}],
               "system": "You count."}
    counted = claude(smol).messages.count_tokens(**kw).input_tokens  # the gateway's GGUF tokenizer
    reported = claude(smol).messages.create(max_tokens=1, **kw).usage.input_tokens  # llama.cpp's usage
    assert counted == reported > 10


def test_messages_tool_loop(smol: GatewayProc) -> None:
    c = claude(smol)
    ask: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    kw: Any = {"model": CHAT, "max_tokens": 40, "messages": ask, "tools": [WEATHER],
               "tool_choice": {"type": "tool", "name": "get_weather"}, "extra_body": GREEDY}
    first = c.messages.create(**kw)
    use = next(b for b in first.content if b.type == "tool_use")
    assert first.stop_reason == "tool_use" and use.name == "get_weather"
    assert isinstance(use.input, dict) and isinstance(use.input.get("city"), str)
    with c.messages.stream(**kw) as stream:
        streamed = stream.get_final_message()
    streamed_use = next(b for b in streamed.content if b.type == "tool_use")
    assert streamed_use.input == use.input and streamed.stop_reason == "tool_use"
    history: Any = [*ask, {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                  "content": "18 degrees and sunny"}]}]
    second = c.messages.create(model=CHAT, max_tokens=12, messages=history, tools=[WEATHER], extra_body=GREEDY)
    assert second.content and second.content[0].type == "text" and second.content[0].text


def test_responses_stream_equals_create_and_function_call(smol: GatewayProc) -> None:
    c = oai(smol)
    kw: Any = {"model": CHAT, "input": "Name a fruit.", "instructions": "Answer in one word.",
               "max_output_tokens": 8, "temperature": 0}
    whole = c.responses.create(**kw)
    assert whole.output_text
    with c.responses.stream(**kw) as stream:
        last = list(stream)[-1]  # response.completed, or response.incomplete when max_output_tokens cut it
    assert last.type == f"response.{whole.status}"
    final = last.response  # type: ignore[union-attr]
    assert final.output_text == whole.output_text and final.usage == whole.usage
    tool: Any = {"type": "function", "name": "get_weather", "parameters": WEATHER["input_schema"]}
    r = c.responses.create(model=CHAT, input="Weather in Paris?", tools=[tool], temperature=0,
                           tool_choice={"type": "function", "name": "get_weather"}, max_output_tokens=40)
    call = next(i for i in r.output if i.type == "function_call")
    assert call.name == "get_weather" and call.call_id and '"city"' in call.arguments


def _unit(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def test_embeddings_openai_langchain_ollama(smol: GatewayProc) -> None:
    texts = ["The cat sat on the mat.", "Stock markets fell sharply today.", "The cat sat on the mat."]
    r = oai(smol).embeddings.create(model=EMBED, input=texts)
    vectors = [d.embedding for d in r.data]
    assert [len(v) for v in vectors] == [576] * 3  # SmolLM2-135M's hidden size, one vector per input
    assert all(_unit(v) == pytest.approx(1.0, abs=1e-4) for v in vectors)
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-5)
    assert r.usage.prompt_tokens > 0
    lc = OpenAIEmbeddings(model=EMBED, base_url=smol.url + "/v1", api_key="unused",  # type: ignore[arg-type]
                          check_embedding_ctx_length=False, max_retries=0)
    assert lc.embed_query(texts[0]) == pytest.approx(vectors[0], abs=1e-5)
    o = ollama.Client(host=smol.url, timeout=120).embed(EMBED, texts[:2])
    assert list(o.embeddings[1]) == pytest.approx(vectors[1], abs=1e-5)


def test_embedding_contract_errors(smol: GatewayProc) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        oai(smol).embeddings.create(model=CHAT, input="x")
    assert EMBED in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        oai(smol).embeddings.create(model=EMBED, input="x", dimensions=64)
    assert "dimensions" in exc.value.message
    with pytest.raises(anthropic.BadRequestError) as aexc:
        claude(smol).messages.create(model=EMBED, max_tokens=4, messages=[{"role": "user", "content": "x"}])
    assert CHAT in aexc.value.message
