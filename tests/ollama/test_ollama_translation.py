"""Ollama API <-> OpenAI translation against the fake engine: tool calls, thinking, options,
history, metadata, mid-stream errors, embeddings, auth and the second listener."""

from __future__ import annotations

from pathlib import Path

import httpx
import ollama
import pytest
from ollama_fake_upstream import CONTENT, REASONING, FakeUpstream
from ollama_helpers import Gateway, fleet_config, serve_gateway

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(fleet_gw: Gateway) -> ollama.Client:
    return ollama.Client(host=fleet_gw.url, timeout=30)


def test_tags_show_metadata_roo_code_reads(client: ollama.Client) -> None:
    names = [m.model for m in client.list().models]
    assert names == ["toolbot", "toolbot:7b", "plain"]  # colon aliases listed for old pickers
    shown = client.show("toolbot:7b")
    assert shown.capabilities == ["completion", "tools", "thinking"]
    assert shown.details is not None and shown.details.family and shown.details.parameter_size
    ctx = {k: v for k, v in (shown.modelinfo or {}).items() if k.endswith(".context_length")}
    assert list(ctx.values()) == [32768]
    assert client.show("plain").capabilities == ["completion"]


def test_show_accepts_the_legacy_name_field(fleet_gw: Gateway) -> None:
    r = httpx.post(fleet_gw.url + "/api/show", json={"name": "toolbot"})
    assert r.status_code == 200 and "tools" in r.json()["capabilities"]


def test_streamed_tool_call_arrives_whole_with_object_arguments(client: ollama.Client, fake: FakeUpstream) -> None:
    parts = list(client.chat("toolbot:7b", messages=ASK, tools=[WEATHER_TOOL], stream=True, think=True))
    calls = [tc for p in parts for tc in (p.message.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Paris", "unit": "celsius"}
    assert "".join(p.message.thinking or "" for p in parts) == "".join(REASONING)
    final = parts[-1]
    assert final.done and final.done_reason == "stop" and final.eval_count == 7
    sent = fake.last()
    assert sent["model"] == "fake-tool-model" and sent["tools"] == [WEATHER_TOOL]
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_tool_call_not_streamed(client: ollama.Client) -> None:
    r = client.chat("toolbot", messages=ASK, tools=[WEATHER_TOOL], stream=False)
    assert r.done and r.message.tool_calls
    assert r.message.tool_calls[0].function.arguments == {"city": "Paris", "unit": "celsius"}
    assert r.message.thinking == "".join(REASONING)  # think omitted: reasoning is shown


def test_think_false_hides_reasoning_and_disables_it_upstream(client: ollama.Client, fake: FakeUpstream) -> None:
    parts = list(client.chat("toolbot", messages=ASK, think=False, stream=True))
    assert not any(p.message.thinking for p in parts)
    assert "".join(p.message.content or "" for p in parts) == "".join(CONTENT)
    assert fake.last()["chat_template_kwargs"] == {"enable_thinking": False}


def test_think_level_maps_to_reasoning_effort(client: ollama.Client, fake: FakeUpstream) -> None:
    r = client.chat("toolbot", messages=ASK, think="high", stream=False)
    assert r.message.thinking and r.message.content == "".join(CONTENT)
    assert fake.last()["reasoning_effort"] == "high"


def test_think_on_a_model_without_thinking_is_refused(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as exc:
        client.chat("plain", messages=ASK, think=True)
    assert exc.value.status_code == 400 and "does not support thinking" in exc.value.error


def test_options_and_format_mapping(client: ollama.Client, fake: FakeUpstream) -> None:
    client.chat("plain", messages=ASK, stream=False, format="json", keep_alive="5m", options={
        "num_predict": 42, "num_ctx": 8192, "temperature": 0.3, "top_p": 0.9, "top_k": 20,
        "seed": 11, "stop": ["\n\n", "END"], "repeat_penalty": 1.1})
    sent = fake.last()
    assert sent["max_tokens"] == 42 and sent["temperature"] == 0.3 and sent["top_p"] == 0.9
    assert sent["top_k"] == 20 and sent["seed"] == 11 and sent["stop"] == ["\n\n", "END"]
    assert sent["repetition_penalty"] == 1.1 and sent["response_format"] == {"type": "json_object"}
    assert "num_ctx" not in sent and "options" not in sent and "keep_alive" not in sent
    assert sent["stream"] is False and "chat_template_kwargs" not in sent

    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    client.generate("plain", "x", format=schema, options={"num_predict": -1}, stream=False)
    sent = fake.last()
    assert "max_tokens" not in sent
    assert sent["response_format"]["json_schema"]["schema"] == schema


def test_history_with_tool_results_becomes_openai_history(client: ollama.Client, fake: FakeUpstream) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        *ASK,
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "18 C, sunny", "tool_name": "get_weather"},
        {"role": "user", "content": "And now?", "images": ["iVBORw0KGgo="]},
    ]
    with pytest.raises(ollama.ResponseError):  # `plain` has no vision
        client.chat("plain", messages=messages, stream=False)
    client.chat("toolbot", messages=messages[:-1], stream=False)
    sent = fake.last()["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    call = sent[2]["tool_calls"][0]
    assert call["type"] == "function" and call["function"] == {"name": "get_weather",
                                                                "arguments": '{"city":"Paris"}'}
    assert sent[3] == {"role": "tool", "content": "18 C, sunny", "tool_call_id": call["id"]}


def test_generate_with_suffix_uses_completions(client: ollama.Client, fake: FakeUpstream) -> None:
    parts = list(client.generate("plain", "def add(a, b):", suffix="return c", stream=True))
    assert "".join(p.response or "" for p in parts) == "fill in"
    assert parts[-1].done and parts[-1].prompt_eval_count == 3 and parts[-1].eval_count == 2
    sent = fake.last("/v1/completions")
    assert sent["prompt"] == "def add(a, b):" and sent["suffix"] == "return c"


def test_generate_thinking_and_system(client: ollama.Client, fake: FakeUpstream) -> None:
    r = client.generate("toolbot", "Why?", system="Be brief.", think=True, stream=False)
    assert r.response == "".join(CONTENT) and r.thinking == "".join(REASONING)
    assert fake.last()["messages"][0] == {"role": "system", "content": "Be brief."}


def test_midstream_error_is_a_final_error_line(client: ollama.Client, fleet_gw: Gateway) -> None:
    stream = client.chat("plain", messages=[{"role": "user", "content": "FAIL_MIDSTREAM"}], stream=True)
    with pytest.raises(ollama.ResponseError) as exc:
        list(stream)
    assert "engine exploded" in exc.value.error
    body = {"model": "plain", "messages": [{"role": "user", "content": "FAIL_MIDSTREAM"}]}
    lines = httpx.post(fleet_gw.url + "/api/chat", json=body).text.splitlines()
    assert lines[-1].startswith('{"error":') and not any('"done":true' in ln for ln in lines)


def test_embed_needs_an_embedding_model(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as exc:
        client.embed("plain", ["a"])
    assert exc.value.status_code == 400 and "does not support embeddings" in exc.value.error


def test_embed_and_legacy_embeddings(fake: FakeUpstream, tmp_path: Path) -> None:
    cfg = fleet_config(fake.url)
    cfg["models"][1]["capabilities"] = {"embedding": True}  # `plain` as an embedding model
    with serve_gateway(tmp_path, cfg) as gw:
        c = ollama.Client(host=gw.url, timeout=30)
        r = c.embed("plain", ["one", "three"])
        assert [list(v) for v in r.embeddings] == [[3.0, 0.5, -0.5, 0.0], [5.0, 0.5, -0.5, 1.0]]
        assert fake.last("/v1/embeddings")["input"] == ["one", "three"]
        legacy = c.embeddings("plain", "four")
        assert list(legacy.embedding) == [4.0, 0.5, -0.5, 0.0]


def test_api_key_and_second_listener(fake: FakeUpstream, tmp_path: Path) -> None:
    cfg = fleet_config(fake.url, api_keys=["sk-test"])
    with serve_gateway(tmp_path, cfg, extra_listeners=1) as gw:
        assert httpx.get(gw.url + "/api/version").status_code == 200  # probes need no key
        with pytest.raises(ollama.ResponseError) as exc:
            ollama.Client(host=gw.url).list()
        assert exc.value.status_code == 401
        for url in (gw.url, *gw.extra_urls):
            c = ollama.Client(host=url, headers={"Authorization": "Bearer sk-test"})
            assert next(m.model for m in c.list().models) == "toolbot"
            assert c.chat("toolbot", messages=ASK, stream=False).message.content == "".join(CONTENT)
