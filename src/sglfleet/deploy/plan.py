"""What every renderer shares: the fleet file read for deployment, the engine units derived
from it, the fleet file the deployed gateway reads, and YAML/argv helpers.

`${VAR}` references in the fleet file are kept as written (not resolved from this shell):
the rendered gateway fleet file is interpolated by the gateway at run time, from its own
environment (env file, compose `.env`, Kubernetes Secret).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sglfleet.config import ConfigError, FleetConfig, ModelConfig, parse_config
from sglfleet.engines.managed_gpu import sglang_profile
from sglfleet.sglang.profile import SGLangProfile

GATEWAY_CONFIG_PATH = "/etc/sglfleet/fleet.yaml"
GATEWAY_NAME = "sglfleet-gateway"
HF_CACHE_IN_CONTAINER = "/root/.cache/huggingface"
API_KEY_ENV = "SGLANG_API_KEY"
DEFAULT_BOOTSTRAP_PORT = 8998  # SGLang's --disaggregation-bootstrap-port default
_SENTINEL = "\ue000{"  # stands in for "${" while the fleet file is validated
_VAR_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")

Files = dict[str, str]


class DeployError(Exception):
    """A fleet file that is valid but cannot be rendered for the chosen target."""


@dataclass(frozen=True, kw_only=True)
class EngineUnit:
    """One SGLang server process group to deploy: a model (and, for PD, one role of it)."""

    model: ModelConfig
    name: str  # DNS-1123 label: service / unit / container name
    role: str  # "server" | "prefill" | "decode"
    profile: SGLangProfile  # served name set; host as configured (containers override it)

    @property
    def port(self) -> int:
        return self.profile.port

    @property
    def bootstrap_port(self) -> int:
        """The port a prefill server's bootstrap server listens on (decode servers connect to it)."""
        return self.profile.disaggregation_bootstrap_port or DEFAULT_BOOTSTRAP_PORT

    @property
    def replicas(self) -> int:
        return self.model.replicas

    @property
    def image(self) -> str:
        return f"{self.profile.docker_image}:{self.profile.docker_tag}"

    @property
    def gpus_per_node(self) -> int:
        total = self.profile.tp * self.profile.pp * self.profile.dp
        return max(1, total // max(1, self.profile.nnodes))

    @property
    def startup_s(self) -> int:
        return int(self.model.restart.startup_timeout_s)

    @property
    def local_paths(self) -> tuple[str, ...]:
        """Local model / draft-model directories (mounted read-only into containers)."""
        paths = (self.profile.model_path, self.profile.speculative_draft_model_path)
        return tuple(dict.fromkeys(p for p in paths if p and p.startswith("/")))

    def argv(self, *, host: str | None = None, secret_ref: str | None = None) -> list[str]:
        """Launch argv; `host` overrides the bind address, `secret_ref` replaces the API key."""
        prof = self.profile if host is None else self.profile.model_copy(update={"host": host})
        return with_secret_ref(prof.to_argv(), secret_ref)


def with_secret_ref(argv: list[str], ref: str | None) -> list[str]:
    """Replace the value after `--api-key` by `ref` (e.g. `${SGLANG_API_KEY}`): never render secrets."""
    if ref is None:
        return argv
    return [ref if i > 0 and argv[i - 1] == "--api-key" else a for i, a in enumerate(argv)]


def slug(name: str, limit: int = 40) -> str:
    """A DNS-1123 label from a model name (`Qwen/Qwen3.6-35B` -> `qwen-qwen3-6-35b`)."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return re.sub(r"-{2,}", "-", text)[:limit].rstrip("-") or "model"


def _protect(data: Any) -> Any:
    if isinstance(data, str):
        return data.replace("${", _SENTINEL)
    if isinstance(data, list):
        return [_protect(x) for x in data]
    if isinstance(data, dict):
        return {k: _protect(v) for k, v in data.items()}
    return data


def restore(text: str) -> str:
    return text.replace(_SENTINEL, "${")


def env_refs(text: str) -> list[str]:
    """Names of the `${VAR}` references in rendered text, sorted."""
    return sorted(set(_VAR_NAME.findall(restore(text))))


def load_fleet(path: str | Path) -> FleetConfig:
    """Validate a fleet file for deployment; raises `ConfigError` with every problem."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError([("<file>", f"cannot read {p}: {exc.strerror}")], str(p)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([("<yaml>", str(exc))], str(p)) from None
    return parse_config(_protect(data), env={}, source=str(p))


def engine_units(cfg: FleetConfig) -> list[EngineUnit]:
    """The SGLang engines to deploy: managed `engine: sglang` models, one unit per PD role."""
    units: list[EngineUnit] = []
    for m in cfg.models:
        if m.engine != "sglang" or not m.managed:
            continue
        base = sglang_profile(m).model_copy(update={"served_model_name": m.served_model})
        roles: dict[str, SGLangProfile] = {base.disaggregation_mode or "server": base}
        if m.preset:
            from sglfleet.planner.presets import load_preset

            for role, overrides in load_preset(m.preset).roles.items():
                roles[role] = SGLangProfile.model_validate(base.model_dump() | overrides)
        roles.pop("null", None)
        for role, prof in roles.items():
            suffix = "" if role == "server" else f"-{role}"
            units.append(EngineUnit(model=m, name=f"sglang-{slug(m.name, 40 - len(suffix))}{suffix}",
                                    role=role, profile=prof))
    names = [u.name for u in units]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DeployError(f"model names map to the same service name(s) {sorted(dup)}; rename one model")
    return units


def worker_entries(units: list[EngineUnit],
                   source: Callable[[EngineUnit], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Model name -> how the deployed gateway finds its workers, for `gateway_fleet`.
    `source(u)` says where one unit's workers are (`{"urls": [...]}`, with `bootstrap_ports`
    for prefill, or `{"discovery": {...}}`). A PD model gets `prefill` and `decode` groups;
    the prefill group keeps the model's policy (prefix-aware choice pays off where the prompt
    is computed), the decode group the group default (least_load)."""
    workers: dict[str, dict[str, Any]] = {}
    for u in units:
        if u.role == "server":
            workers[u.model.name] = source(u)
            continue
        group = source(u)
        if u.role == "prefill" and u.model.policy != "least_load":
            group["policy"] = u.model.policy
        workers.setdefault(u.model.name, {})[u.role] = group
    for name, entry in workers.items():
        roles = set(entry) & {"prefill", "decode"}
        if len(roles) == 1:
            (have,) = roles
            missing = "decode" if have == "prefill" else "prefill"
            raise DeployError(f"model {name!r} has a {have} server but no {missing} server; give it a preset "
                              "with both roles (e.g. deepseek-r1-distill-llama-8b-pd)")
    return workers


def gpu_ids(units: list[EngineUnit]) -> dict[str, list[int]]:
    """One host, several engines (compose, systemd): each engine's own GPU indices, consecutive
    in file order. Empty for a single engine (it gets the host's GPUs as before) and skipped
    for an engine whose profile env sets CUDA_VISIBLE_DEVICES itself."""
    if len(units) < 2:
        return {}
    out: dict[str, list[int]] = {}
    nxt = 0
    for u in units:
        if "CUDA_VISIBLE_DEVICES" in u.profile.env:
            continue
        out[u.name] = list(range(nxt, nxt + u.gpus_per_node))
        nxt += u.gpus_per_node
    return out


def gateway_fleet(cfg: FleetConfig, *, port: int, workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fleet file for the deployed gateway: it listens on 0.0.0.0:`port`, and each model
    in `workers` (name -> {"urls": [...]} or {"discovery": {...}}) becomes `engine: external`."""
    gw: dict[str, Any] = cfg.gateway.model_dump(mode="json", exclude_defaults=True)
    gw.update({"host": "0.0.0.0", "port": port})
    models: list[dict[str, Any]] = []
    for m in cfg.models:
        entry = m.model_dump(mode="json", exclude_defaults=True)
        if m.name in workers:
            for key in ("sglang", "preset", "model_path", "hooks", "source", "replicas", "engine_args",
                        "restart", "n_ctx", "n_threads", "prompt_cache_mb", "memory_bytes", "urls"):
                entry.pop(key, None)
            entry.update({"engine": "external", "upstream_model": m.served_model, **workers[m.name]})
        models.append(entry)
    return {"gateway": gw, "models": models}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a label dict used twice is written out twice, not as &id001 / *id001


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None  # embedded files (ConfigMap data) stay readable
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(*docs: Any) -> str:
    """YAML for humans and tools: block style, keys in the order built, `${VAR}` restored."""
    text = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True, width=100)
    return restore(text)


def header(kind: str) -> str:
    return f"# Rendered by `sglfleet deploy {kind}` from the fleet file; edit the fleet file, not this.\n"
