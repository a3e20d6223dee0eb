"""Which model serves which API: a generation route asked of an embedding model is a 400 that
names the models that can, on /v1 as on the translated APIs."""

from __future__ import annotations

from tests.core.harness import gateway


async def test_chat_and_completions_refuse_an_embedding_model() -> None:
    async with gateway(1, model={"capabilities": {"embedding": True}}) as gw:
        r = await gw.chat("hi")
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == "model" and "embedding model" in err["message"]
        r = await gw.client.post("/v1/completions", json={"model": "m", "prompt": "hi", "max_tokens": 2})
        assert r.status_code == 400 and "embedding model" in r.json()["error"]["message"]
        assert gw.engines[0].requests == []  # refused before anything was sent
