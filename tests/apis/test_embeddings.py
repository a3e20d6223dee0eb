"""/v1/embeddings and Ollama's /api/embed with the official clients (openai SDK, LangChain's
OpenAIEmbeddings, the ollama client) against the simulated SGLang embedding worker, and the
contract checks (which model serves embeddings, what each engine takes)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import httpx
import ollama
import openai
import pytest
from langchain_openai import OpenAIEmbeddings
from ollama_helpers import Gateway

from sglfleet.api.embeddings import base64_floats, pooled, upstream_body
from sglfleet.core.errors import BadRequest
from sglfleet.engines.registry import get_engine
from sglfleet.sim.embeddings import DIM, embed_ids
from sglfleet.sim.tokenizer import tokenize
from tests.apis.conftest import KEY

TEXTS = ["the cat sat on the mat", "a completely different sentence", "the cat sat on the mat"]


def sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=KEY, max_retries=0, timeout=30)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_openai_sdk_list_input(gw: Gateway) -> None:
    r = sdk(gw).embeddings.create(model="simembed", input=TEXTS)  # the SDK asks for base64 by default
    assert r.model == "simembed" and [d.index for d in r.data] == [0, 1, 2]
    vectors = [d.embedding for d in r.data]
    assert all(len(v) == DIM for v in vectors)
    assert vectors[0] == pytest.approx(embed_ids(tokenize(TEXTS[0])), abs=1e-6)  # float32 round trip
    assert cosine(vectors[0], vectors[2]) == pytest.approx(1.0)
    assert cosine(vectors[0], vectors[1]) < 0.9
    assert r.usage.prompt_tokens == sum(len(tokenize(t)) for t in TEXTS)
    floats = sdk(gw).embeddings.create(model="simembed", input=TEXTS, encoding_format="float")
    for row, vec in zip(floats.data, vectors, strict=True):
        assert row.embedding == pytest.approx(vec, abs=1e-6)


def test_base64_is_little_endian_float32(gw: Gateway) -> None:
    body = {"model": "simembed", "input": "hello", "encoding_format": "base64"}
    r = httpx.post(gw.v1 + "/embeddings", json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == 200
    expected = embed_ids(tokenize("hello"))
    assert r.json()["data"][0]["embedding"] == base64_floats(expected)


def test_token_ids_and_dimensions(gw: Gateway) -> None:
    ids = tokenize("the cat sat")
    one = sdk(gw).embeddings.create(model="simembed", input=ids, encoding_format="float")
    assert one.data[0].embedding == pytest.approx(embed_ids(ids))
    many = sdk(gw).embeddings.create(model="simembed", input=[ids, ids[:1]], dimensions=16, encoding_format="float")
    assert [len(d.embedding) for d in many.data] == [16, 16]
    assert math.sqrt(sum(x * x for x in many.data[0].embedding)) == pytest.approx(1.0)


def test_langchain_openai_embeddings(gw: Gateway) -> None:
    # check_embedding_ctx_length=False: send text, not tiktoken ids (a self-hosted model has its own tokenizer)
    emb = OpenAIEmbeddings(model="simembed", base_url=gw.v1, api_key=KEY,  # type: ignore[arg-type]
                           check_embedding_ctx_length=False, max_retries=0)
    docs = emb.embed_documents(TEXTS)
    query = emb.embed_query(TEXTS[0])
    assert len(docs) == 3 and all(len(d) == DIM for d in docs)
    assert cosine(docs[0], query) == pytest.approx(1.0)


def test_ollama_client_embed(gw: Gateway) -> None:
    c = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    r = c.embed("simembed", TEXTS[:2])
    assert [len(v) for v in r.embeddings] == [DIM, DIM]
    assert list(r.embeddings[0]) == pytest.approx(embed_ids(tokenize(TEXTS[0])), abs=1e-6)
    legacy = c.embeddings("simembed", TEXTS[0])
    assert list(legacy.embedding) == pytest.approx(list(r.embeddings[0]), abs=1e-6)


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"model": "simchat", "input": "x"}, 400, "simembed"),  # a chat model names the embedding models
    ({"model": "simembed"}, 400, "input"),
    ({"model": "simembed", "input": []}, 400, "input"),
    ({"model": "simembed", "input": [1.5]}, 400, "input"),
    ({"model": "simembed", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
    ({"model": "simembed", "input": "x", "dimensions": 0}, 400, "dimensions"),
    ({"model": "simembed", "input": "x", "dimensions": 4096}, 400, "dimensions"),  # the engine's own 400
    ({"model": "nope", "input": "x"}, 404, "nope"),
])
def test_errors_in_openai_shape(gw: Gateway, body: Any, status: int, words: str) -> None:
    r = httpx.post(gw.v1 + "/embeddings", json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_ollama_embed_on_a_chat_model_is_a_400(gw: Gateway) -> None:
    c = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    with pytest.raises(ollama.ResponseError) as exc:
        c.embed("simchat", "x")
    assert exc.value.status_code == 400 and "simembed" in exc.value.error


def _pool(engine: str) -> Any:
    return SimpleNamespace(name="m", cfg=SimpleNamespace(engine=engine), engine=get_engine(engine))


def test_engine_contract_llamacpp_takes_text_only() -> None:
    body = upstream_body(_pool("llamacpp"), "m", ["a", "b"], None)
    assert body == {"model": "m", "input": ["a", "b"], "encoding_format": "float"}
    with pytest.raises(BadRequest, match="token-id input") as exc:
        upstream_body(_pool("llamacpp"), "m", [1, 2, 3], None)
    assert exc.value.param == "input"
    with pytest.raises(BadRequest, match="dimensions"):
        upstream_body(_pool("llamacpp"), "m", "a", 8)
    assert upstream_body(_pool("sglang"), "m", [[1, 2]], 8)["dimensions"] == 8


def test_per_token_vectors_are_mean_pooled_and_normalised() -> None:
    assert pooled([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)])
    assert pooled([3.0, 4.0]) == [3.0, 4.0]  # already one vector: as the engine sent it
