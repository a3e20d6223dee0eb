"""Issue 17: real clients (openai SDK, LangChain, ollama) against both engine kinds behind one
gateway: the embedded llama.cpp engine (`llamacpp`, marked `engine`) and the SGLang-shaped
simulator (`sglang`). The same tests run on both; an answer must be correct or a clear 400."""

from __future__ import annotations

import json

import httpx
import ollama
import openai
import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.compat.conftest import Engine
from tests.fleetproc import GatewayProc, wait_for


class Weather(BaseModel):
    city: str
    temp: int


@tool
def get_weather(city: str) -> str:
    """The weather of a city."""
    return f"18 C and sunny in {city}"


TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def sdk(e: Engine) -> openai.OpenAI:
    return openai.OpenAI(base_url=e.url + "/v1", api_key="none", timeout=120, max_retries=0)


def lc(e: Engine, **kw: object) -> ChatOpenAI:
    return ChatOpenAI(base_url=e.url + "/v1", api_key="none", model=e.model, temperature=0, max_tokens=60,
                      max_retries=0, timeout=120, **kw)  # type: ignore[arg-type]


def test_parse_with_a_pydantic_model(engine: Engine) -> None:
    out = sdk(engine).chat.completions.parse(model=engine.model, messages=ASK, response_format=Weather,
                                             max_tokens=60, temperature=0)
    parsed = out.choices[0].message.parsed
    assert isinstance(parsed, Weather)


def test_two_round_tool_loop(engine: Engine) -> None:
    c = sdk(engine)
    first = c.chat.completions.create(model=engine.model, messages=ASK, tools=[TOOL], tool_choice="required",
                                      max_tokens=60, temperature=0)
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    second = c.chat.completions.create(
        model=engine.model, tools=[TOOL], max_tokens=16,
        messages=[*ASK, first.choices[0].message.model_dump(exclude_none=False),
                  {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"}])
    assert second.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_n_choices(engine: Engine) -> None:
    out = sdk(engine).chat.completions.create(model=engine.model, messages=ASK, n=2, max_tokens=6)
    assert sorted(ch.index for ch in out.choices) == [0, 1]
    assert out.usage is not None and out.usage.completion_tokens >= 2


def test_n_choices_streamed(engine: Engine) -> None:
    stream = sdk(engine).chat.completions.create(model=engine.model, messages=ASK, n=2, max_tokens=6, stream=True,
                                                 stream_options={"include_usage": True})
    text: dict[int, str] = {0: "", 1: ""}
    usage = None
    for chunk in stream:
        for ch in chunk.choices:
            text[ch.index] += ch.delta.content or ""
        usage = chunk.usage or usage
    assert text[0] and text[1]
    assert usage is not None and usage.completion_tokens >= 2


def test_logprobs(engine: Engine) -> None:
    out = sdk(engine).chat.completions.create(model=engine.model, messages=ASK, logprobs=True, max_tokens=4)
    lp = out.choices[0].logprobs
    assert lp is not None and lp.content and isinstance(lp.content[0].logprob, float)


def test_content_parts_and_developer_role(engine: Engine) -> None:
    out = sdk(engine).chat.completions.create(model=engine.model, max_tokens=8, messages=[
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "Say hi"}, {"type": "text", "text": "please"}]}])
    assert out.choices[0].message.content


def test_models_retrieve(engine: Engine) -> None:
    assert sdk(engine).models.retrieve(engine.model).id == engine.model
    with pytest.raises(openai.NotFoundError):
        sdk(engine).models.retrieve("no-such-model")


def test_explicit_nulls_and_bad_response_format(engine: Engine) -> None:
    r = httpx.post(engine.url + "/v1/chat/completions", timeout=120, json={
        "model": engine.model, "messages": ASK, "max_tokens": 4, "temperature": None, "top_p": None, "seed": None})
    assert r.status_code == 200, r.text
    r = httpx.post(engine.url + "/v1/chat/completions", timeout=30, json={
        "model": engine.model, "messages": ASK, "response_format": {"type": "AAA"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format.type"


def test_tools_refused_without_the_capability(engine: Engine) -> None:
    r = httpx.post(engine.url + "/v1/chat/completions", timeout=30, json={
        "model": engine.model + "-notools", "messages": ASK, "tools": [TOOL]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"


def test_too_long_prompt_same_400_streamed_or_not(engine: Engine) -> None:
    body = {"model": engine.model, "messages": [{"role": "user", "content": "word " * 12_000}], "max_tokens": 4}
    plain = httpx.post(engine.url + "/v1/chat/completions", json=body, timeout=120)
    streamed = httpx.post(engine.url + "/v1/chat/completions", json={**body, "stream": True}, timeout=120)
    assert plain.status_code == streamed.status_code == 400
    assert plain.json()["error"]["message"] == streamed.json()["error"]["message"]


def test_langchain_structured_output_default_method(engine: Engine) -> None:
    out = lc(engine).with_structured_output(Weather).invoke("Weather in Paris as JSON")
    assert isinstance(out, Weather)


def test_langchain_bind_tools_loop_streamed(engine: Engine) -> None:
    model = lc(engine).bind_tools([get_weather], tool_choice="get_weather")
    msg = None
    for chunk in model.stream("What is the weather in Paris?"):
        msg = chunk if msg is None else msg + chunk
    assert msg is not None and msg.tool_calls and msg.tool_calls[0]["name"] == "get_weather"
    result = ToolMessage(content=get_weather.invoke(msg.tool_calls[0]["args"]), tool_call_id=msg.tool_calls[0]["id"])
    final = lc(engine).bind_tools([get_weather]).invoke(["What is the weather in Paris?", msg, result])
    assert final is not None


def test_ollama_format_schema_and_latest(engine: Engine) -> None:
    c = ollama.Client(host=engine.url, timeout=120)
    out = c.chat(model=engine.model + ":latest", messages=ASK, format=Weather.model_json_schema(),
                 options={"num_predict": 60, "temperature": 0})
    Weather.model_validate_json(out.message.content)
    assert c.chat(model="auto", messages=ASK, options={"num_predict": 4}).message.content


def test_completions_prompt_list_and_empty_prompt(engine: Engine) -> None:
    c = sdk(engine)
    out = c.completions.create(model=engine.model, prompt=["Once upon", "A cat"], max_tokens=4)
    assert sorted(ch.index for ch in out.choices) == [0, 1]
    try:
        empty = c.completions.create(model=engine.model, prompt="", max_tokens=4)
        assert empty.choices
    except openai.BadRequestError as exc:
        assert "prompt" in str(exc)


def test_streams_read_to_the_end_are_not_499(engine: Engine, compat_gw: GatewayProc) -> None:
    c = sdk(engine)
    for _ in range(3):
        stream = c.chat.completions.create(model=engine.model, messages=ASK, max_tokens=6, stream=True)
        assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert wait_for(lambda: compat_gw.log().count(f"model={engine.model} ") >= 3, 10)
    lines = [ln for ln in compat_gw.log().splitlines() if f"model={engine.model} " in ln]
    assert lines and not [ln for ln in lines if "status=499" in ln]
