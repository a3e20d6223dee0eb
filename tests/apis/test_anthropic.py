"""The official `anthropic` SDK against /v1/messages: text, streaming (the SDK's accumulated
message equals the non-streamed one), a two-round tool loop, thinking, count_tokens, auth and
errors in Anthropic's shape."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest
from ollama_fake_upstream import CONTENT, REASONING, TOOL_ARGS, FakeUpstream
from ollama_helpers import Gateway

from tests.apis.conftest import KEY

WEATHER: Any = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                                  "unit": {"type": "string"}},
                                 "required": ["city"]}}
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


def client(gw: Gateway, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=kw.pop("api_key", KEY), max_retries=0, timeout=60, **kw)


def same(a: anthropic.types.Message, b: anthropic.types.Message, *, usage: bool = True) -> None:
    """Equal but for the message id (two requests) and, unless `usage`, the usage."""
    da, db = a.model_dump(), b.model_dump()
    assert da.pop("id").startswith("msg_") and db.pop("id").startswith("msg_")
    if not usage:
        da.pop("usage"), db.pop("usage")
    assert da == db


def test_text_on_sim(gw: Gateway) -> None:
    msg = client(gw).messages.create(model="simchat", max_tokens=8, messages=[{"role": "user", "content": "Hi"}],
                                     system="You are terse.")
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "simchat"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text  # type: ignore[union-attr]
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 8
    assert msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0) > 0


def test_stream_equals_create_on_sim(gw: Gateway) -> None:
    kw: Any = {"model": "simchat", "max_tokens": 12, "messages": [{"role": "user", "content": "Count, please."}]}
    c = client(gw)
    whole = c.messages.create(**kw)
    with c.messages.stream(**kw) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text  # type: ignore[union-attr]
    # the second run may read the prompt from the engine's cache: compare the total
    assert (final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)
            == whole.usage.input_tokens + (whole.usage.cache_read_input_tokens or 0))
    same(final, whole, usage=False)


def test_thinking_and_text_streamed_equal_whole(gw: Gateway) -> None:
    kw: Any = {"model": "toolbot", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}],
               "thinking": {"type": "enabled", "budget_tokens": 1024}}
    c = client(gw)
    whole = c.messages.create(**kw)
    assert [b.type for b in whole.content] == ["thinking", "text"]
    assert whole.content[0].thinking == "".join(REASONING)  # type: ignore[union-attr]
    assert whole.content[1].text == "".join(CONTENT)  # type: ignore[union-attr]
    assert whole.stop_reason == "end_turn" and whole.usage.output_tokens == 7
    with c.messages.stream(**kw) as stream:
        final = stream.get_final_message()
    same(final, whole)


def test_exact_event_sequence(gw: Gateway) -> None:
    body = {"model": "toolbot", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    r = httpx.post(gw.url + "/v1/messages", json=body, headers={"x-api-key": KEY}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [(e.split("\n")[0].removeprefix("event: "), orjson.loads(e.split("\n")[1].removeprefix("data: ")))
              for e in r.text.strip().split("\n\n")]
    names = [n for n, _ in events]
    assert all(n == d["type"] for n, d in events)
    expected = (["message_start", "ping", "content_block_start"] + ["content_block_delta"] * len(REASONING)
                + ["content_block_stop", "content_block_start"] + ["content_block_delta"] * len(CONTENT)
                + ["content_block_stop", "message_delta", "message_stop"])
    assert names == expected
    deltas = [d["delta"]["type"] for n, d in events if n == "content_block_delta"]
    assert deltas == ["thinking_delta"] * len(REASONING) + ["text_delta"] * len(CONTENT)
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == 7 and final["usage"]["input_tokens"] > 0


def test_two_round_tool_loop(gw: Gateway, fake: FakeUpstream) -> None:
    c = client(gw)
    first = c.messages.create(model="toolbot", max_tokens=64, messages=ASK, tools=[WEATHER],
                              tool_choice={"type": "any"})
    assert fake.last()["tool_choice"] == "required"
    assert fake.last()["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.id == "call_fake_1" and use.name == "get_weather"
    assert use.input == orjson.loads("".join(TOOL_ARGS))
    with c.messages.stream(model="toolbot", max_tokens=64, messages=ASK, tools=[WEATHER],
                           tool_choice={"type": "any"}) as stream:
        events = [e.type for e in stream]
        streamed = stream.get_final_message()
    assert "input_json" in events  # the SDK's own event for input_json_delta
    same(streamed, first)

    history: Any = [*ASK, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": use.id, "content": "18 degrees, sunny"},
                        {"type": "text", "text": "And tomorrow?"}]}]
    second = c.messages.create(model="toolbot", max_tokens=64, messages=history, tools=[WEATHER],
                               thinking={"type": "disabled"})
    sent = fake.last()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[1]["tool_calls"][0]["id"] == "call_fake_1"
    assert orjson.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == use.input
    assert sent[2] == {"role": "tool", "tool_call_id": "call_fake_1", "content": "18 degrees, sunny"}
    assert sent[3]["content"] == "And tomorrow?"
    assert fake.last()["chat_template_kwargs"] == {"enable_thinking": False}
    assert all(b.type != "thinking" for b in second.content)  # thinking disabled: no thinking blocks


def test_parameters_reach_the_engine(gw: Gateway, fake: FakeUpstream) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    client(gw).messages.create(model="toolbot", max_tokens=33, messages=ASK, stop_sequences=["END"],
                               system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
                               output_config={"format": {"type": "json_schema", "schema": schema}},
                               # sampling parameters older SDKs and many agents still send
                               extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 5})
    sent = fake.last()
    assert sent["max_tokens"] == 33 and sent["stop"] == ["END"]
    assert (sent["temperature"], sent["top_p"], sent["top_k"]) == (0.2, 0.9, 5)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief.\n\nBe kind."}
    assert sent["response_format"]["json_schema"]["schema"] == schema


def test_task_route_model(gw: Gateway) -> None:
    raw = client(gw).messages.with_raw_response.create(model="auto", max_tokens=4, messages=ASK)
    assert raw.headers["x-sglfleet-model"] == "simchat" and raw.headers["x-sglfleet-route"] == "ANY"
    assert raw.parse().model == "auto"


def test_count_tokens_is_the_engines_count(gw: Gateway) -> None:
    c = client(gw)
    kw: Any = {"model": "simchat", "messages": [{"role": "user", "content": "one two three four five"}],
               "system": "sys"}
    counted = c.messages.count_tokens(**kw).input_tokens
    msg = c.messages.create(max_tokens=2, **kw)
    assert counted > 5 and counted == msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0)


def test_auth_x_api_key_and_bearer(gw: Gateway) -> None:
    ok = {"model": "simchat", "max_tokens": 2, "messages": ASK}
    assert client(gw).messages.create(**ok).content  # x-api-key
    bearer = anthropic.Anthropic(base_url=gw.url, auth_token=KEY, max_retries=0)
    assert bearer.messages.create(**ok).content  # Authorization: Bearer
    with pytest.raises(anthropic.AuthenticationError) as exc:
        client(gw, api_key="sk-wrong").messages.create(**ok)
    assert exc.value.status_code == 401
    assert exc.value.body == {"type": "error", "error": {"type": "authentication_error", "message": "invalid API key"}}


@pytest.mark.parametrize(("body", "status", "kind", "words"), [
    ({"model": "simchat", "messages": ASK}, 400, "invalid_request_error", "max_tokens"),
    ({"model": "simchat", "max_tokens": 5, "messages": []}, 400, "invalid_request_error", "messages"),
    ({"model": "simchat", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document"}]}]},
     400, "invalid_request_error", "messages.0.content"),
    ({"model": "simchat", "max_tokens": 5, "messages": ASK, "temperature": "hot"}, 400, "invalid_request_error",
     "temperature"),
    ({"model": "nope", "max_tokens": 5, "messages": ASK}, 404, "not_found_error", "nope"),
    ({"model": "simembed", "max_tokens": 5, "messages": ASK}, 400, "invalid_request_error", "simchat"),
    ({"model": "simchat", "max_tokens": 5, "messages": ASK, "tool_choice": {"type": "tool"}}, 400,
     "invalid_request_error", "name"),
])
def test_errors_in_anthropic_shape(gw: Gateway, body: Any, status: int, kind: str, words: str) -> None:
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        if path.endswith("count_tokens") and words in ("max_tokens", "temperature"):
            continue  # count_tokens takes neither: only the other cases apply to it
        r = httpx.post(gw.url + path, json=body, headers={"x-api-key": KEY}, timeout=30)
        assert r.status_code == status, r.text
        err = r.json()
        assert err["type"] == "error" and err["error"]["type"] == kind and words in err["error"]["message"]


def test_malformed_json_is_a_400(gw: Gateway) -> None:
    r = httpx.post(gw.url + "/v1/messages", content=b"{nope", headers={"x-api-key": KEY}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_error_mid_stream_is_an_error_event(gw: Gateway) -> None:
    c = client(gw)
    with pytest.raises(anthropic.APIStatusError) as exc:
        with c.messages.stream(model="toolbot", max_tokens=64,
                               messages=[{"role": "user", "content": "FAIL_MIDSTREAM"}]) as stream:
            for _ in stream:
                pass
    assert "engine exploded mid-stream" in str(exc.value)
