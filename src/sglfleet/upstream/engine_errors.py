"""Engine error bodies, made fit for the client: validation errors become 400s, and 5xx
messages lose what only the engine's operator should see (file paths, tracebacks).

llama-cpp-python answers every exception, its own request validation included, with HTTP 500
and `str(exc)`: `1 validation error for CreateChatCompletionRequest ... {'type': ...,
'loc': ('body', 'response_format', 'type'), 'msg': "Input should be ..."}`. That is the
client's request at fault, so it becomes a 400 naming the field.
"""

from __future__ import annotations

import re

_VALIDATION = re.compile(r"^\s*(?:engine returned HTTP \d+: )?\d+ validation errors?\b")
_LOC_MSG = re.compile(r"""'loc': \((?P<loc>[^)]*)\),\s*'msg': (?P<q>['"])(?P<msg>.*?)(?P=q)""")
_TRACE = re.compile(r"Traceback \(most recent call last\):.*", re.S)
_FILE_LINE = re.compile(r"""File "[^"]+", line \d+(?:, in \S+)?""")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[\w.+-]+){2,}\.(?:py|pyx|c|cc|cpp|h|so)(?::\d+)?")


def is_validation_error(message: str) -> bool:
    return bool(_VALIDATION.search(message))


def validation_summary(message: str) -> tuple[str, str | None]:
    """'invalid value for 'a.b': msg' and the parameter path, from a pydantic error text."""
    m = _LOC_MSG.search(message)
    if m is None:
        return "the engine rejected the request: " + clean(message)[:300], None
    parts = [p.strip().strip("'\"") for p in m.group("loc").split(",")]
    parts = [p for p in parts if p and p != "body" and not p[:1].isupper()]  # drop union tags
    param = ".".join(parts) or None
    count = message.split(" ", 1)[0]
    more = f" (the engine found {count} problems)" if count.isdigit() and count != "1" else ""
    return f"invalid value for '{param}': {m.group('msg')}{more}", param


def clean(message: str) -> str:
    """No tracebacks, source file paths or line numbers."""
    message = _TRACE.sub("", message)
    message = _FILE_LINE.sub("(engine source)", message)
    return _PATH.sub("(engine source)", message).strip()
