"""The prompt token ids an engine will see for a request, computed once in the gateway.

`kv_events` routing needs the engine's own tokens: block keys are hashes of token ids. Two
kinds, chosen by `kv_events.tokenizer`:

- `sim`: the simulated worker's tokenizer and chat rendering (`sglfleet.sim.tokenizer`,
  loaded by name at run time so the request path has no import of the simulator);
- a path to a model directory (or its `tokenizer.json`): HF `tokenizers`, with the chat
  template of `tokenizer_config.json` rendered by jinja2's sandbox like the engines do.

Anything this cannot render (tools, unknown content parts) still yields tokens of the
text; a wrong guess only costs a cache miss, never a failed request.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Protocol


class RequestTokenizer(Protocol):
    def encode(self, body: dict[str, Any] | None, text: str) -> list[int]: ...


class SimTokenizer:
    def __init__(self) -> None:
        self._mod = importlib.import_module("sglfleet.sim.tokenizer")

    def encode(self, body: dict[str, Any] | None, text: str) -> list[int]:
        body = body or {}
        messages = body.get("messages")
        if isinstance(messages, list) and messages:
            try:
                return list(self._mod.tokenize(self._mod.render_chat(messages)))
            except ValueError:
                return []
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if isinstance(prompt, list) and all(type(t) is int for t in prompt):
            return list(prompt)
        return list(self._mod.tokenize(prompt if isinstance(prompt, str) else text))


class HFTokenizer:
    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer

        p = Path(path).expanduser()
        file = p / "tokenizer.json" if p.is_dir() else p
        if not file.is_file():
            raise ValueError(f"kv_events.tokenizer: no tokenizer.json at {path!r}")
        self._tok = Tokenizer.from_file(str(file))
        self._template: Any = None
        self._special: dict[str, str] = {}
        cfg_file = file.parent / "tokenizer_config.json"
        if cfg_file.is_file():
            cfg = json.loads(cfg_file.read_text())
            template = cfg.get("chat_template")
            if isinstance(template, list):  # named templates: take "default"
                template = next((t.get("template") for t in template if t.get("name") == "default"), None)
            for name in ("bos_token", "eos_token"):
                tok = cfg.get(name)
                tok = tok.get("content") if isinstance(tok, dict) else tok
                if isinstance(tok, str):
                    self._special[name] = tok
            if isinstance(template, str):
                from jinja2.sandbox import ImmutableSandboxedEnvironment

                env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
                self._template = env.from_string(template)

    def encode(self, body: dict[str, Any] | None, text: str) -> list[int]:
        body = body or {}
        messages = body.get("messages")
        if isinstance(messages, list) and messages and self._template is not None:
            try:
                prompt = self._template.render(messages=messages, add_generation_prompt=True,
                                               tools=body.get("tools"), **self._special)
                return list(self._tok.encode(prompt, add_special_tokens=False).ids)
            except Exception:  # a template error must never fail the request: fall through
                pass
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt):
            return list(prompt)
        return list(self._tok.encode(prompt if isinstance(prompt, str) else text).ids)


def load_tokenizer(spec: str) -> RequestTokenizer:
    """`sim` or a model directory / tokenizer.json path; ValueError when unusable."""
    if spec == "sim":
        return SimTokenizer()
    try:
        return HFTokenizer(spec)
    except ImportError as exc:
        raise ValueError(f"kv_events.tokenizer {spec!r} needs the `tokenizers` package: {exc}") from None
