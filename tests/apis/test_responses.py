"""The official `openai` SDK against /v1/responses: text, streaming (the SDK's accumulated
response equals the non-streamed one), function tools, function-call outputs,
previous_response_id, the stored responses, and OpenAI-shaped errors."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest
from ollama_fake_upstream import CONTENT, REASONING, TOOL_ARGS, FakeUpstream
from ollama_helpers import Gateway

from sglfleet.api.responses_store import ResponseStore
from tests.apis.conftest import KEY

WEATHER: Any = {"type": "function", "name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ASK = "What is the weather in Paris?"


def sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=KEY, max_retries=0, timeout=60)


def comparable(resp: Any) -> dict[str, Any]:
    """A response without what differs between two requests: ids and timestamps."""
    d = resp.model_dump(exclude_none=True) if not isinstance(resp, dict) else dict(resp)
    assert d.pop("id").startswith("resp_")
    d.pop("created_at"), d.pop("completed_at", None)
    d["output"] = [{k: v for k, v in item.items() if k != "id"} for item in d["output"]]
    return d


def test_text_on_sim(gw: Gateway) -> None:
    r = sdk(gw).responses.create(model="simchat", input="Hello there", instructions="Be terse.",
                                 max_output_tokens=6)
    assert r.object == "response" and r.model == "simchat" and r.instructions == "Be terse."
    assert r.status == "incomplete" and r.incomplete_details and r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text and len(r.output_text.split()) == 6
    assert r.usage and r.usage.output_tokens == 6 and r.usage.input_tokens > 0


def test_stream_equals_create_with_reasoning(gw: Gateway) -> None:
    c = sdk(gw)
    kw: Any = {"model": "toolbot", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
               "reasoning": {"effort": "low"}}
    whole = c.responses.create(**kw)
    assert [i.type for i in whole.output] == ["reasoning", "message"]
    assert whole.output[0].content[0].text == "".join(REASONING)  # type: ignore[union-attr,index]
    assert whole.output_text == "".join(CONTENT) and whole.status == "completed"
    with c.responses.stream(**kw) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == CONTENT
    assert comparable(final) == comparable(whole)


def test_exact_event_sequence(gw: Gateway) -> None:
    body = {"model": "toolbot", "input": "Hi", "stream": True, "reasoning": {"effort": "none"}}
    r = httpx.post(gw.v1 + "/responses", json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == 200
    events = [orjson.loads(e.split("\n")[1].removeprefix("data: ")) for e in r.text.strip().split("\n\n")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    names = [e["type"] for e in events]
    assert names == (["response.created", "response.in_progress", "response.output_item.added",
                      "response.content_part.added"] + ["response.output_text.delta"] * len(CONTENT)
                     + ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                        "response.completed"])
    assert events[0]["response"]["status"] == "in_progress" and events[-1]["response"]["status"] == "completed"


def test_function_tool_two_rounds(gw: Gateway, fake: FakeUpstream) -> None:
    c = sdk(gw)
    first = c.responses.create(model="toolbot", input=ASK, tools=[WEATHER], tool_choice="required")
    assert fake.last()["tool_choice"] == "required"
    assert fake.last()["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER["parameters"]}}]
    call = next(i for i in first.output if i.type == "function_call")
    assert call.name == "get_weather" and call.call_id == "call_fake_1" and call.arguments == "".join(TOOL_ARGS)
    with c.responses.stream(model="toolbot", input=ASK, tools=[WEATHER], tool_choice="required") as stream:
        args = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert args == TOOL_ARGS
    assert comparable(final) == comparable(first)

    # round two, the stateless way: the whole conversation as items
    items: Any = [{"role": "user", "content": ASK},
                  {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
                  {"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees"}]
    c.responses.create(model="toolbot", input=items, tools=[WEATHER], store=False)
    stateless = fake.last()["messages"]
    assert [m["role"] for m in stateless] == ["user", "assistant", "tool"]
    assert stateless[1]["tool_calls"][0]["id"] == "call_fake_1"
    assert stateless[2] == {"role": "tool", "tool_call_id": "call_fake_1", "content": "18 degrees"}

    # and the stateful way: previous_response_id + only the new output
    c.responses.create(model="toolbot", previous_response_id=first.id, tools=[WEATHER],
                       input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees"}])
    assert fake.last()["messages"] == stateless


def test_previous_response_id_carries_text_history_not_instructions(gw: Gateway, fake: FakeUpstream) -> None:
    c = sdk(gw)
    first = c.responses.create(model="toolbot", input="My name is Ada.", instructions="Be terse.")
    c.responses.create(model="toolbot", input="What is my name?", previous_response_id=first.id)
    sent = fake.last()["messages"]
    assert sent == [{"role": "user", "content": "My name is Ada."},
                    {"role": "assistant", "content": "".join(CONTENT)},
                    {"role": "user", "content": "What is my name?"}]


def test_stored_responses_get_delete_and_unknown_ids(gw: Gateway) -> None:
    c = sdk(gw)
    r = c.responses.create(model="simchat", input="store me", max_output_tokens=3)
    got = c.responses.retrieve(r.id)
    assert comparable(got) == comparable(r) and got.id == r.id
    c.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError) as exc:
        c.responses.create(model="simchat", input="x", previous_response_id=r.id)
    assert exc.value.body["param"] == "previous_response_id"  # type: ignore[index]
    unstored = c.responses.create(model="simchat", input="do not keep", max_output_tokens=2, store=False)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(unstored.id)


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"model": "simchat"}, 400, "input"),
    ({"model": "simchat", "input": 5}, 400, "input"),
    ({"model": "simchat", "input": "x", "tools": [{"type": "web_search"}]}, 400, "web_search"),
    ({"model": "simchat", "input": "x", "tools": [{"type": "function"}]}, 400, "name"),
    ({"model": "simchat", "input": [{"type": "computer_call_output", "call_id": "a"}]}, 400, "input"),
    ({"model": "simchat", "input": "x", "max_output_tokens": 0}, 400, "max_output_tokens"),
    ({"model": "simchat", "input": "x", "text": {"format": {"type": "json_schema"}}}, 400, "schema"),
    ({"model": "nope", "input": "x"}, 404, "nope"),
    ({"model": "simembed", "input": "x"}, 400, "simchat"),
])
def test_errors_in_openai_shape(gw: Gateway, body: Any, status: int, words: str) -> None:
    r = httpx.post(gw.v1 + "/responses", json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err["message"] and err["type"] == "invalid_request_error"


def test_auth_required(gw: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.v1, api_key="wrong", max_retries=0).responses.create(model="simchat", input="x")


def test_error_mid_stream_is_response_failed(gw: Gateway) -> None:
    with sdk(gw).responses.stream(model="toolbot", input="FAIL_MIDSTREAM") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error and "exploded" in events[-1].response.error.message  # type: ignore[union-attr]


def test_store_ttl_and_bounds() -> None:
    now = [0.0]
    store = ResponseStore(ttl_s=10, max_entries=2, max_bytes=10_000, clock=lambda: now[0])
    msgs = [{"role": "user", "content": "x"}]
    store.put({"id": "a"}, msgs)
    store.put({"id": "b"}, msgs)
    store.put({"id": "c"}, msgs)  # over max_entries: the oldest goes
    assert store.get("a") is None and store.get("b") is not None and len(store) == 2
    now[0] = 10.5
    assert store.get("b") is None and store.get("c") is None and len(store) == 0  # expired
    store.put({"id": "big"}, [{"role": "user", "content": "y" * 20_000}])  # larger than the budget
    assert store.get("big") is None
    store.put({"id": "d"}, [{"role": "user", "content": "y" * 6_000}])
    store.put({"id": "e"}, [{"role": "user", "content": "y" * 6_000}])  # over max_bytes: d goes
    assert store.get("d") is None and store.get("e") is not None
    assert store.delete("e") and not store.delete("e")
