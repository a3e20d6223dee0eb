"""systemd: one unit per SGLang engine, the gateway unit ordered after them, and a watchdog
service + timer running `sglfleet deploy watchdog` (served model list, health, restart).

Engines run natively (`python3 -m sglang.launch_server`) and bind the address in their
profile (seed 004: a GPU host's private IP, not 0.0.0.0). Secrets come from one
environment file (`EnvironmentFile=-/etc/sglfleet/sglfleet.env`); none is rendered.
Several engines get their own GPUs (`CUDA_VISIBLE_DEVICES`, consecutive in file order). A
prefill/decode model is two units, `...-prefill` and `...-decode` (give the decode role its
own port in the preset); the gateway's PD model points at both, with the bootstrap port.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from sglfleet.config import FleetConfig
from sglfleet.deploy.plan import (
    API_KEY_ENV,
    EngineUnit,
    Files,
    dump_yaml,
    engine_units,
    env_refs,
    gateway_fleet,
    gpu_ids,
    header,
    worker_entries,
)

_RESTART = {"always": "always", "on-failure": "on-failure", "never": "no"}


@dataclass(frozen=True, kw_only=True)
class SystemdOptions:
    prefix: str = "sglfleet"
    sglfleet_bin: str = "/usr/local/bin/sglfleet"
    config_dir: str = "/etc/sglfleet"
    user: str | None = None  # None = root (GPU device access without extra groups)
    watchdog_every: str = "2min"

    @property
    def env_file(self) -> str:
        return f"{self.config_dir}/sglfleet.env"


def _quote(argv: list[str]) -> str:
    # systemd splits ExecStart like a shell; `${VAR}` stays unquoted so it expands to one word.
    return " ".join(a if a.startswith("${") and a.endswith("}") else shlex.quote(a) for a in argv)


def _unit(sections: dict[str, list[tuple[str, str]]]) -> str:
    out = [header("systemd").rstrip("\n")]
    for name, items in sections.items():
        out.append(f"\n[{name}]")
        out += [f"{k}={v}" for k, v in items]
    return "\n".join(out) + "\n"


def engine_unit_name(u: EngineUnit, opts: SystemdOptions) -> str:
    return f"{opts.prefix}-{u.name}.service"


def _engine(u: EngineUnit, opts: SystemdOptions, gpus: list[int] | None) -> str:
    r = u.model.restart
    secret = f"${{{API_KEY_ENV}}}" if u.profile.api_key is not None else None
    service: list[tuple[str, str]] = [("Type", "simple")]
    if opts.user:
        service.append(("User", opts.user))
    service += [("EnvironmentFile", f"-{opts.env_file}")]
    env = dict(u.profile.env) | ({"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))} if gpus is not None else {})
    service += [("Environment", shlex.quote(f"{k}={v}")) for k, v in sorted(env.items())]
    service += [
        ("ExecStart", _quote(u.argv(secret_ref=secret))),
        ("Restart", _RESTART[r.autorestart]),
        ("RestartSec", f"{max(1, int(r.backoff_initial_s))}s"),
        ("TimeoutStartSec", f"{u.startup_s}s"),
        ("TimeoutStopSec", f"{max(1, int(r.stop_grace_s))}s"),
        ("KillMode", "control-group"),  # tensor-parallel workers are children: stop them all
        ("LimitMEMLOCK", "infinity"),
        ("LimitNOFILE", "1048576"),
    ]
    if u.model.memory_bytes:
        service.append(("MemoryMax", str(u.model.memory_bytes)))
    return _unit({
        "Unit": [("Description", f"SGLang engine for {u.model.name} ({u.role})"),
                 ("Wants", "network-online.target"), ("After", "network-online.target"),
                 ("StartLimitIntervalSec", f"{int(r.flap_window_s)}s"),
                 ("StartLimitBurst", str(r.flap_max_crashes))],
        "Service": service,
        "Install": [("WantedBy", "multi-user.target")],
    })


def _gateway(cfg: FleetConfig, engines: list[str], opts: SystemdOptions) -> str:
    after = " ".join(["network-online.target", *engines])
    service: list[tuple[str, str]] = [("Type", "simple")]
    if opts.user:
        service.append(("User", opts.user))
    service += [
        ("EnvironmentFile", f"-{opts.env_file}"),
        ("ExecStart", _quote([opts.sglfleet_bin, "serve", "--config", f"{opts.config_dir}/fleet.yaml"])),
        ("Restart", "on-failure"), ("RestartSec", "2s"),
        ("TimeoutStopSec", "40s"),  # in-flight streams get time to finish
        ("LimitNOFILE", "65536"),
    ]
    return _unit({
        "Unit": [("Description", "sglfleet gateway (one OpenAI-compatible endpoint)"),
                 ("Wants", after), ("After", after)],
        "Service": service,
        "Install": [("WantedBy", "multi-user.target")],
    })


def _source(u: EngineUnit) -> dict[str, Any]:
    group: dict[str, Any] = {"urls": [u.profile.base_url]}
    if u.role == "prefill":
        group["bootstrap_ports"] = [u.bootstrap_port]
    return group


def render(cfg: FleetConfig, opts: SystemdOptions = SystemdOptions()) -> Files:
    units = engine_units(cfg)
    files: Files = {}
    checks = []
    ids = gpu_ids(units)
    for u in units:
        name = engine_unit_name(u, opts)
        files[name] = _engine(u, opts, ids.get(u.name))
        checks.append({"unit": name, "url": u.profile.base_url, "served_model": u.model.served_model})
    port = cfg.gateway.port or 8000
    workers = worker_entries(units, _source)
    fleet_text = header("systemd") + dump_yaml(gateway_fleet(cfg, port=port, workers=workers))
    files["fleet.yaml"] = fleet_text
    files[f"{opts.prefix}-gateway.service"] = _gateway(cfg, [engine_unit_name(u, opts) for u in units], opts)
    files["watchdog.json"] = json.dumps({"engines": checks}, indent=2) + "\n"
    files[f"{opts.prefix}-watchdog.service"] = _unit({
        "Unit": [("Description", "sglfleet watchdog: served models and health, restart on failure")],
        "Service": [("Type", "oneshot"),
                    ("ExecStart", _quote([opts.sglfleet_bin, "deploy", "watchdog",
                                          f"{opts.config_dir}/watchdog.json", "--restart"]))],
    })
    files[f"{opts.prefix}-watchdog.timer"] = _unit({
        "Unit": [("Description", "Run the sglfleet watchdog periodically")],
        "Timer": [("OnBootSec", "5min"), ("OnUnitActiveSec", opts.watchdog_every),
                  ("Unit", f"{opts.prefix}-watchdog.service")],
        "Install": [("WantedBy", "timers.target")],
    })
    names = env_refs(fleet_text) + ([API_KEY_ENV] if any(u.profile.api_key for u in units) else [])
    files["sglfleet.env.example"] = (
        f"# Copy to {opts.env_file} (mode 0600) and fill in; read by every unit.\n"
        + "".join(f"{n}=\n" for n in ["HF_TOKEN", *sorted(set(names))]))
    return files
