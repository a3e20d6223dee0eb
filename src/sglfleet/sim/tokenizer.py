"""Approximate, deterministic tokenizer and the synthetic output vocabulary.

A token is a run of up to 8 non-space characters; whitespace separates tokens and is not
itself a token. Ids are CRC-32 of the piece, so they are stable across processes. Output
tokens are words `sim-<n>` (n < 10000): each is exactly one token, so a later prompt that
quotes an earlier answer re-tokenizes to the same ids and hits the prefix cache.

The output is a function of the prompt and the position only: the word at position p is a
hash of (seed, prompt, p). A prompt that ends with output words (a continuation: the answer
so far appended to the prompt, or a chat's open final assistant message) is read as the
prompt before them plus a position, so a generation continued on another worker produces
exactly the words the uninterrupted one would have (`split_answer`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

PIECE_CHARS = 8
OUTPUT_VOCAB = 10_000
_WORD = re.compile(r"\S+")


def _pieces(text: str) -> Iterable[str]:
    for word in _WORD.findall(text):
        if len(word) <= PIECE_CHARS:
            yield word
        else:
            for i in range(0, len(word), PIECE_CHARS):
                yield word[i : i + PIECE_CHARS]


def token_id(piece: str) -> int:
    return zlib.crc32(piece.encode())


def tokenize(text: str) -> list[int]:
    """Token ids of `text` (same text, same ids, in every process)."""
    return [zlib.crc32(p.encode()) for p in _pieces(text)]


def content_text(content: Any) -> str:
    """Text of an OpenAI message `content`: a string or a list of parts (text kept)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict):
                texts.append(f"<{part.get('type', 'part')}>")
            else:
                raise ValueError("message content parts must be objects")
        return " ".join(texts)
    raise ValueError("message content must be a string or a list of parts")


def render_chat(messages: Sequence[Any], *, continue_final: bool = False) -> str:
    """A ChatML-like prompt: `<|im_start|>role text <|im_end|>` per message, then assistant.
    With `continue_final` (SGLang/vLLM's `continue_final_message`) the last message, an
    assistant's, stays open: its text is the start of the answer to continue."""
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise ValueError("each message must be an object with a string 'role'")
        if continue_final and i == len(messages) - 1:
            if msg["role"] != "assistant":
                raise ValueError("continue_final_message needs an assistant message last")
            out.append(f"<|im_start|>assistant {content_text(msg.get('content'))}")
            return "\n".join(out)
        out.append(f"<|im_start|>{msg['role']} {content_text(msg.get('content'))} <|im_end|>")
    out.append("<|im_start|>assistant")
    return "\n".join(out)


_OUTPUT_WORD = re.compile(r"sim-\d{1,4}")


def split_answer(text: str) -> tuple[str, int]:
    """(the prompt before a trailing run of output words, how many there are)."""
    i = len(text.rstrip())
    n = 0
    while i > 0:
        j = i
        while j > 0 and not text[j - 1].isspace():
            j -= 1
        if not _OUTPUT_WORD.fullmatch(text, j, i):
            break
        n += 1
        i = j
        while i > 0 and text[i - 1].isspace():
            i -= 1
    return text[:i], n


class OutputSampler:
    """Deterministic synthetic output: the word at each position is a hash of the seed, the
    prompt and the position; `offset` is where the answer starts (a continuation)."""

    __slots__ = ("_key", "_pos")

    def __init__(self, seed: int, prompt_ids: Sequence[int], offset: int = 0) -> None:
        head = b",".join(str(t).encode() for t in prompt_ids[-64:])
        self._key = (seed * 1_000_003 + zlib.crc32(head) + len(prompt_ids)) & 0xFFFFFFFF
        self._pos = offset

    def next_piece(self) -> str:
        h = zlib.crc32(self._pos.to_bytes(8, "little"), self._key)
        self._pos += 1
        return f"sim-{h % OUTPUT_VOCAB}"

    def stops(self, eos_rate: float) -> bool:
        """Does the answer end after the word just drawn (a function of its position too)?"""
        if eos_rate <= 0:
            return False
        h = zlib.crc32(b"eos" + self._pos.to_bytes(8, "little"), self._key)
        return h / 4294967296.0 < eos_rate


def join_pieces(pieces: Sequence[str], first: bool) -> str:
    """Text of consecutive output pieces; `first` means no leading space."""
    text = " ".join(pieces)
    return text if first else " " + text
