"""docker compose: one service per SGLang engine and the sglfleet gateway, started in order.

Each engine gets the GPUs it needs (device reservation), `ipc: host` and a shm size for
NCCL, the Hugging Face cache and a local model directory (read-only), and a health check on
`/health` with a start period as long as the model's start-up timeout. The gateway waits
for them with `condition: service_healthy` and reads `gateway/fleet.yaml`, where every
engine is an `engine: external` model at `http://<service>:<port>`.

Several engines on the one host get their own GPUs (`device_ids`, consecutive in file order;
`count: N` alone would give every container GPU 0..N-1). A prefill/decode model is two
services, `<name>-prefill` and `<name>-decode`; the gateway's PD model points at both, with
the prefill service's bootstrap port. With `--disaggregation-ib-device` an engine gets
`/dev/infiniband` and IPC_LOCK for the RDMA transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sglfleet import __version__
from sglfleet.config import FleetConfig
from sglfleet.deploy.plan import (
    API_KEY_ENV,
    GATEWAY_CONFIG_PATH,
    HF_CACHE_IN_CONTAINER,
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

NETWORK = "sglfleet"


@dataclass(frozen=True, kw_only=True)
class ComposeOptions:
    project: str = "sglfleet"
    gateway_image: str = f"sglfleet:{__version__}"
    hf_cache: str = "~/.cache/huggingface"  # host directory shared by the engines


def probe(url: str) -> list[str]:
    """A health-check command that needs only python3 (present in both images, unlike curl)."""
    code = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=8)"
    return ["CMD", "python3", "-c", code]


def _engine_service(u: EngineUnit, opts: ComposeOptions, gpus: list[int] | None) -> dict[str, Any]:
    secret = f"${{{API_KEY_ENV}}}" if u.profile.api_key is not None else None
    volumes = [f"{opts.hf_cache}:{HF_CACHE_IN_CONTAINER}"]
    volumes += [f"{p}:{p}:ro" for p in u.local_paths]
    svc: dict[str, Any] = {
        "image": u.image,
        "command": u.argv(host="0.0.0.0", secret_ref=secret),
        "ipc": "host",
        "shm_size": u.profile.docker_shm_size,
        "ulimits": {"memlock": -1, "stack": 67108864},
        "volumes": volumes,
        "environment": {"HF_TOKEN": "${HF_TOKEN:-}", **dict(sorted(u.profile.env.items()))},
        "deploy": {"resources": {"reservations": {"devices": [_gpus(u, gpus)]}}},
        "healthcheck": {
            "test": probe(f"http://127.0.0.1:{u.port}{u.profile.health_path}"),
            "interval": "30s", "timeout": "10s", "retries": 3,
            "start_period": f"{u.startup_s}s", "start_interval": "10s",
        },
        "restart": "unless-stopped",
        "networks": [NETWORK],
    }
    if u.profile.disaggregation_ib_device:
        svc["devices"] = ["/dev/infiniband:/dev/infiniband"]
        svc["cap_add"] = ["IPC_LOCK"]
    if u.replicas > 1:
        # NOTE: replicas of one service share its DNS name; the gateway still sees one URL.
        svc["deploy"]["replicas"] = u.replicas
    return svc


def _gpus(u: EngineUnit, ids: list[int] | None) -> dict[str, Any]:
    if ids is None:
        return {"driver": "nvidia", "count": u.gpus_per_node, "capabilities": ["gpu"]}
    return {"driver": "nvidia", "device_ids": [str(i) for i in ids], "capabilities": ["gpu"]}


def _source(u: EngineUnit) -> dict[str, Any]:
    group: dict[str, Any] = {"urls": [f"http://{u.name}:{u.port}"]}
    if u.role == "prefill":
        group["bootstrap_ports"] = [u.bootstrap_port]
    return group


def render(cfg: FleetConfig, opts: ComposeOptions = ComposeOptions()) -> Files:
    units = engine_units(cfg)
    port = cfg.gateway.port or 8000
    workers = worker_entries(units, _source)
    fleet_text = header("compose") + dump_yaml(gateway_fleet(cfg, port=port, workers=workers))
    ids = gpu_ids(units)
    services: dict[str, Any] = {u.name: _engine_service(u, opts, ids.get(u.name)) for u in units}
    gateway: dict[str, Any] = {
        "image": opts.gateway_image,
        "command": ["sglfleet", "serve", "--config", GATEWAY_CONFIG_PATH],
        "ports": [f"{port}:{port}"],
        "volumes": [f"./gateway/fleet.yaml:{GATEWAY_CONFIG_PATH}:ro"],
        "healthcheck": {"test": probe(f"http://127.0.0.1:{port}/health"), "interval": "15s",
                        "timeout": "5s", "retries": 3, "start_period": "30s"},
        "restart": "unless-stopped",
        "networks": [NETWORK],
    }
    refs = env_refs(fleet_text)
    if refs:
        gateway["environment"] = {name: f"${{{name}}}" for name in refs}
    if units:
        gateway["depends_on"] = {u.name: {"condition": "service_healthy", "restart": True} for u in units}
    services["sglfleet-gateway"] = gateway
    doc = {"name": opts.project, "services": services, "networks": {NETWORK: {"driver": "bridge"}}}
    return {"compose.yaml": header("compose") + dump_yaml(doc), "gateway/fleet.yaml": fleet_text}
