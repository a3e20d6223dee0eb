"""Secrets out of anything shown: URLs with credentials, engine argv, free text.

Workers never keep credentials in their URL (see `split_credentials`), so what the router
shows is clean by construction; these helpers cover text that comes from elsewhere: engine
command lines written to logs, engine log lines that become crash reasons, error bodies.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

# Flags whose value is a secret, in the engines' spelling (--api-key, --admin-api-key, --hf-token...).
_SECRET_FLAG = re.compile(r"^--?[\w-]*(?:api[-_]?key|token|secret|password|passwd)$", re.I)
# user:password@ or token@ in any URL, and `--flag value` / `--flag=value` pairs inside free text.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)[^/\s@]+@")
_FLAG_VALUE = re.compile(r"(?P<flag>--?[\w-]*(?:api[-_]?key|token|secret|password|passwd))(?P<sep>[= ]+)(?P<v>\S+)",
                         re.I)
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")


def split_credentials(url: str) -> tuple[str, str | None]:
    """`http://user:pass@host:port/x` -> (`http://host:port/x`, "Basic ..." header value)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def redact_url(url: str) -> str:
    return _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", url)


def redact_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if _SECRET_FLAG.match(flag):
            if eq:
                out.append(f"{flag}={MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact_url(arg))
    return out


def redact_text(text: str) -> str:
    text = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
    text = _FLAG_VALUE.sub(lambda m: m.group("flag") + m.group("sep") + MASK, text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)
