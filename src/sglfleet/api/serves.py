"""Which model serves which API: a model marked `capabilities: {embedding: true}` is an
embedding model (SGLang started with `--is-embedding`, llama.cpp with `--embedding true`, or an
external OpenAI-compatible embedding server) and serves /v1/embeddings and Ollama's /api/embed;
every other model serves the generation APIs. Asking a model for the other kind answers 400
naming the models that can."""

from __future__ import annotations

from sglfleet.config import ModelConfig
from sglfleet.core.errors import BadRequest
from sglfleet.fleet import Fleet
from sglfleet.routing.pool import Pool


def is_embedding_model(cfg: ModelConfig) -> bool:
    return bool(cfg.capabilities.embedding)


def require_generation(fleet: Fleet, pool: Pool, client_model: str, route: str) -> None:
    """400 when a generation route is asked of an embedding model, naming those that can."""
    if not is_embedding_model(pool.cfg):
        return
    names = [p.name for p in fleet.registry if not is_embedding_model(p.cfg)]
    hint = f"models for {route}: {', '.join(names)}" if names else "no generation model is configured"
    raise BadRequest(f'"{client_model}" is an embedding model and serves /v1/embeddings only ({hint})',
                     param="model")


def require_embedding(fleet: Fleet, pool: Pool, client_model: str) -> None:
    """400 when embeddings are asked of a generation model, naming the embedding models."""
    if is_embedding_model(pool.cfg):
        return
    names = [p.name for p in fleet.registry if is_embedding_model(p.cfg)]
    hint = (f"embedding models here: {', '.join(names)}" if names else
            "no embedding model is configured; add one with capabilities: {embedding: true}")
    raise BadRequest(f'"{client_model}" does not support embeddings ({hint})', param="model")
