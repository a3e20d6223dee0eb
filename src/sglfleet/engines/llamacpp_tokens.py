"""Prompt token counts for llama.cpp models, computed in the gateway.

llama-cpp-python's server sends no usage in streams, and its /extras/tokenize waits behind
the running generation (one lock), so the gateway counts prompt tokens itself: the GGUF's
vocabulary only (no weights), its chat template rendered with jinja2, then tokenized exactly
as the engine does. Loading takes ~0.5 s once per model file; counting is sub-millisecond
for ordinary prompts and runs in a worker thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class PromptTokenCounter:
    def __init__(self, model_path: Path) -> None:
        self.model_path = model_path
        self._lock = threading.Lock()
        self._llm: Any = None
        self._formatter: Any = None
        self.failed = False

    def _load(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = Llama(model_path=str(self.model_path), vocab_only=True, verbose=False)
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            text = llm._model.token_get_text
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=text(llm.token_eos()),
                                                  bos_token=text(llm.token_bos()))
        self._llm = llm

    def render(self, messages: list[Any], tools: Any = None) -> tuple[str, list[str]] | None:
        """The GGUF chat template rendered with the generation prompt, as llama-cpp-python's chat
        handler renders it, and its stop strings; None if unknown. Mid-stream migration continues
        a chat on /v1/completions with this prompt plus the answer so far (api/migration.py);
        the server takes string prompts only, tokenized as the chat path tokenizes them (special
        tokens parsed, BOS only where the vocabulary asks for it)."""
        if self.failed:
            return None
        with self._lock:
            try:
                if self._llm is None:
                    self._load()
                if self._formatter is None:
                    return None
                res = self._formatter(messages=messages, tools=tools)
                stop = res.stop if isinstance(res.stop, list) else [res.stop] if res.stop else []
                return res.prompt, [str(x) for x in stop]
            except Exception:  # a template problem refuses the migration, never fails the request
                return None

    def count(self, body: dict[str, Any]) -> int | None:
        """Tokens of a chat (`messages`) or completion (`prompt`) request; None if unknown."""
        if self.failed:
            return None
        with self._lock:
            try:
                if self._llm is None:
                    self._load()
                if "messages" in body:
                    if self._formatter is None:
                        return None
                    prompt = self._formatter(messages=body["messages"], tools=body.get("tools")).prompt
                    return len(self._llm.tokenize(prompt.encode(), add_bos=False, special=True))
                prompt = body.get("prompt")
                if isinstance(prompt, str):
                    return len(self._llm.tokenize(prompt.encode(), add_bos=True, special=False))
                return None
            except Exception:  # a template or file problem must never fail a request
                self.failed = True
                return None
