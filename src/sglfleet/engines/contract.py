"""What an engine kind accepts and returns on the OpenAI routes: its contract.

Each engine class carries one `Contract` (`engine.contract`). The gateway reads it to adapt a
request before sending it (api/adapt.py) and the answer before returning it; nothing outside
engines/ compares engine names. A field says what the engine does *natively*; the gateway
fills the gap where it can (content parts flattened, `developer` renamed, `n` fanned out) and
refuses the rest with a 400 that names the parameter and the engine.

The values below were read from each engine's request models and chat handler:
llama-cpp-python 0.3.36 (`llama_cpp/server/types.py`, `llama_chat_format.py`) and SGLang's
OpenAI protocol (`sglang/srt/entrypoints/openai/protocol.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
TOOL_CHOICES = frozenset({"none", "auto", "required", "named"})


@dataclass(frozen=True, slots=True)
class Contract:
    routes: frozenset[str]  # OpenAI paths it serves, e.g. "/v1/chat/completions"
    roles: frozenset[str] = ALL_ROLES  # message roles its validator and template take
    content_parts: bool = True  # `content` as a list of parts (else flattened to text)
    null_assistant_content: bool = True  # assistant `content: null` beside `tool_calls`
    nulls: bool = True  # explicit `null` for optional fields (else dropped)
    response_formats: frozenset[str] = RESPONSE_FORMATS
    schema_in_json_object: bool = False  # a schema rides inside `json_object` (llama-cpp-python)
    tools: bool = True
    tool_choices: frozenset[str] = TOOL_CHOICES  # "named" = {"type": "function", "function": {...}}
    n: bool = True  # several choices per request (else fanned out by the gateway)
    prompt_lists: bool = True  # /v1/completions with a list of prompts (else fanned out)
    empty_prompt: bool = True  # /v1/completions with prompt ""
    logprobs: bool = True
    logprobs_need_top: bool = False  # `logprobs: true` does nothing unless top_logprobs is set
    usage_in_stream: bool = True  # honours stream_options.include_usage (else the gateway counts)
    repeats_tool_call_header: bool = False  # streamed tool calls repeat id/name in every delta
    stream_context_check: bool = False  # a too-long streamed prompt must be refused by the gateway
    embedding_batch: bool = True  # several inputs in one /v1/embeddings request
    embedding_token_ids: bool = True  # token-id input on /v1/embeddings
    embedding_dimensions: bool = True  # `dimensions` on /v1/embeddings


CHAT_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})

LLAMACPP = Contract(
    routes=CHAT_ROUTES,
    roles=frozenset({"system", "user", "assistant", "tool", "function"}),
    content_parts=False,  # the GGUF's jinja template concatenates content as a string
    null_assistant_content=False,  # its validator wants `content: str` on assistant turns
    nulls=False,  # `temperature: float` etc.: an explicit null fails validation
    response_formats=frozenset({"text", "json_object"}),
    schema_in_json_object=True,
    tool_choices=frozenset({"none", "auto", "named"}),  # named: grammar-constrained; no "required"
    n=False,  # `n` is parsed and ignored
    prompt_lists=False,
    empty_prompt=False,
    logprobs_need_top=True,  # the handler passes `top_logprobs if logprobs else None`
    usage_in_stream=False,
    repeats_tool_call_header=True,
    stream_context_check=True,  # a too-long streamed prompt ends as 200 + [DONE] only
    # 0.3.36 misplaces the per-token vectors of every input after the first in a batch
    embedding_batch=False,
    embedding_token_ids=False,
    embedding_dimensions=False,
)

SGLANG = Contract(routes=CHAT_ROUTES)  # SGLang and vLLM: the full OpenAI surface natively

# An OpenAI-compatible server sglfleet knows nothing about: everything is passed through and
# the engine's own answer (a 4xx becomes the client's 400) stands.
EXTERNAL = Contract(routes=CHAT_ROUTES)
