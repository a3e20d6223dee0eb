"""The whole fleet file, and loading it: YAML, `${VAR}` interpolation, `SGLFLEET_GATEWAY__*`
overrides, one ConfigError listing every problem with its field path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from sglfleet.config.base import DEFAULT_EMBED_MODEL_NAME, DEFAULT_MODEL_NAME, ENV_PREFIX, Frozen
from sglfleet.config.gateway import GatewayConfig
from sglfleet.config.models import Capabilities, ModelConfig
from sglfleet.config.routes import VirtualModel


class FleetConfig(Frozen):
    gateway: GatewayConfig = GatewayConfig()
    # the embedded default: SmolLM2 for chat, and the same GGUF in llama.cpp's embedding mode
    # (demonstration-quality vectors: a chat model's mean-pooled hidden states). Tools: the
    # embedded engine calls a named or sole tool through grammar-constrained decoding.
    models: tuple[ModelConfig, ...] = (
        ModelConfig(name=DEFAULT_MODEL_NAME, capabilities=Capabilities(tools=True)),
        ModelConfig(name=DEFAULT_EMBED_MODEL_NAME, capabilities=Capabilities(embedding=True), n_ctx=512),
    )
    routes: tuple[VirtualModel, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> FleetConfig:
        seen: dict[str, str] = {}
        for m in self.models:
            for n in (m.name, *m.aliases):
                if n in seen:
                    raise ValueError(f"model name {n!r} is used by {seen[n]!r} and {m.name!r}")
                seen[n] = m.name
        served = {n.casefold() for n in seen}
        for v in self.routes:
            if v.name.casefold() in served:
                raise ValueError(f"virtual model {v.name!r} clashes with a served model name")
            for r in v.routes:
                if r.target.casefold() not in served:
                    raise ValueError(f"route {v.name}/{r.name}: target {r.target!r} is not a served model")
            if v.classifier_model and v.classifier_model.casefold() not in served:
                raise ValueError(f"{v.name}: classifier_model {v.classifier_model!r} is not a served model")
        return self

    def model(self, name: str) -> ModelConfig:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)


class ConfigError(Exception):
    """A fleet file with problems; `problems` holds (field path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  {path}: {msg}" for path, msg in problems)
        super().__init__(f"invalid fleet config{f' {source}' if source else ''}:\n{lines}")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(data: Any, env: Mapping[str, str], path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """Replace `${VAR}` and `${VAR:-default}` in every string; unset VAR without default is an error
    (a forgotten API key must not silently turn auth off)."""
    problems: list[tuple[str, str]] = []
    if isinstance(data, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append((path or "<root>", f"environment variable {name} is not set"))
            return ""

        return _VAR.sub(sub, data), problems
    if isinstance(data, list):
        out = []
        for i, item in enumerate(data):
            v, p = interpolate(item, env, f"{path}[{i}]")
            out.append(v)
            problems += p
        return out, problems
    if isinstance(data, dict):
        res = {}
        for k, item in data.items():
            v, p = interpolate(item, env, f"{path}.{k}" if path else str(k))
            res[k] = v
            problems += p
        return res, problems
    return data, problems


def apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """`SGLFLEET_GATEWAY__PORT=9000` sets gateway.port (double underscore = nesting).
    Only the `gateway` section is overridable: models are a list and belong in the file."""
    prefix = ENV_PREFIX + "GATEWAY__"
    for key, raw in env.items():
        if not key.startswith(prefix):
            continue
        parts = [p.lower() for p in key[len(prefix):].split("__") if p]
        if not parts:
            continue
        node = data.setdefault("gateway", {})
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw else raw
    return data


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def parse_config(data: Any, env: Mapping[str, str] | None = None, source: str = "") -> FleetConfig:
    env = os.environ if env is None else env
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "the fleet file must be a mapping with gateway: and models:")], source)
    data, problems = interpolate(data, env)
    data = apply_env_overrides(data, env)
    if problems:
        raise ConfigError(problems, source)
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [(_format_loc(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors()],
            source,
        ) from None


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> FleetConfig:
    """Load a fleet file; with no path, the embedded default (same as examples/embedded.yaml)."""
    if path is None:
        return parse_config({}, env, "(default)")
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError([("<file>", f"cannot read {p}: {exc.strerror}")], str(p)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([("<yaml>", str(exc))], str(p)) from None
    return parse_config(data, env, str(p))
