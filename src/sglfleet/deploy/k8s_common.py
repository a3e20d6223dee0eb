"""Kubernetes pieces shared by the plain, LWS and Dynamo flavours: options, labels, the
SGLang container and pod spec (with its prefill/decode role), and what the gateway is told
about each engine (`gateway_workers`). The gateway's own objects are in `k8s_gateway`.

Prefill/decode: each role is its own workload. A prefill pod names its bootstrap port
(SGLang's `--disaggregation-bootstrap-port`, 8998 by default) as the container port
`bootstrap` and in the annotation `sglfleet.io/bootstrap-port`, which the gateway's
discovery reads; decode pods connect to that port on the prefill pod's IP. With
`--disaggregation-ib-device` the container gets IPC_LOCK and `/dev/infiniband`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sglfleet import __version__
from sglfleet.deploy.discovery import BOOTSTRAP_ANNOTATIONS
from sglfleet.deploy.plan import (
    API_KEY_ENV,
    HF_CACHE_IN_CONTAINER,
    EngineUnit,
    Files,
    dump_yaml,
    header,
    worker_entries,
)

APP_LABEL = "app.kubernetes.io/name"
MODEL_LABEL = "sglfleet.io/model"
ROLE_LABEL = "sglfleet.io/role"
BOOTSTRAP_ANNOTATION = BOOTSTRAP_ANNOTATIONS[0]
IB_DEVICES = "/dev/infiniband"
Obj = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class K8sOptions:
    namespace: str = "sglfleet"
    gateway_image: str = f"sglfleet:{__version__}"
    hf_secret: str = "hf-token"  # Secret with key HF_TOKEN (optional)
    gateway_secret: str = "sglfleet-secrets"  # Secret with the gateway's ${VAR}s and SGLANG_API_KEY
    model_cache_claim: str = "sglfleet-model-cache"
    shm_size: str = "16Gi"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    dynamo_image: str = "nvcr.io/nvidia/ai-dynamo/sglang-runtime:0.6.1"
    host_network: bool = False  # engine pods on the node's network (RDMA setups without an RDMA CNI)
    gateway_replicas: int = 2
    gateway_hpa_max: int | None = None  # HorizontalPodAutoscaler on CPU up to this many replicas
    gateway_hpa_cpu_percent: int = 70


def meta(name: str, opts: K8sOptions, labels: dict[str, str] | None = None) -> Obj:
    return {"name": name, "namespace": opts.namespace,
            "labels": {"app.kubernetes.io/part-of": "sglfleet", **(labels or {})}}


def engine_labels(u: EngineUnit) -> dict[str, str]:
    """app=sglang, the model (same for both PD roles) and the role (server | prefill | decode)."""
    model = u.name.removeprefix("sglang-")
    if u.role != "server":
        model = model.removesuffix(f"-{u.role}")
    return {APP_LABEL: "sglang", MODEL_LABEL: model, ROLE_LABEL: u.role}


def engine_annotations(u: EngineUnit) -> dict[str, str]:
    """Pod annotations the gateway's discovery reads: a prefill pod's bootstrap port."""
    return {BOOTSTRAP_ANNOTATION: str(u.bootstrap_port)} if u.role == "prefill" else {}


def pod_metadata(labels: dict[str, str], u: EngineUnit) -> Obj:
    annotations = engine_annotations(u)
    return {"labels": labels, **({"annotations": annotations} if annotations else {})}


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def http_probe(path: str, period: int, failures: int, timeout: int) -> Obj:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "failureThreshold": failures, "timeoutSeconds": timeout}


def engine_container(u: EngineUnit, opts: K8sOptions, *, extra_args: list[str] | None = None,
                     probes: bool = True) -> Obj:
    secret = f"$({API_KEY_ENV})" if u.profile.api_key is not None else None
    argv = u.argv(host="0.0.0.0", secret_ref=secret) + (extra_args or [])
    hf_ref: Obj = {"name": opts.hf_secret, "key": "HF_TOKEN", "optional": True}
    env: list[Obj] = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": hf_ref}}]
    if secret:
        env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {
            "name": opts.gateway_secret, "key": API_KEY_ENV}}})
    env += [{"name": k, "value": v} for k, v in sorted(u.profile.env.items())]
    gpus = str(u.gpus_per_node)
    mounts: list[Obj] = [{"name": "dshm", "mountPath": "/dev/shm"},
              {"name": "model-cache", "mountPath": HF_CACHE_IN_CONTAINER}]
    mounts += [{"name": f"model-dir-{i}", "mountPath": p, "readOnly": True} for i, p in enumerate(u.local_paths)]
    ports: list[Obj] = [{"name": "http", "containerPort": u.port}]
    if u.role == "prefill":
        ports.append({"name": "bootstrap", "containerPort": u.bootstrap_port})
    if u.profile.disaggregation_ib_device:
        mounts.append({"name": "infiniband", "mountPath": IB_DEVICES})
    c: Obj = {
        "name": "sglang", "image": u.image, "command": argv[:3], "args": argv[3:],
        "ports": ports,
        "env": env,
        "resources": {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}},
        "volumeMounts": mounts,
    }
    if u.profile.disaggregation_ib_device:
        # RDMA memory registration pins pages: the KV transfer needs IPC_LOCK.
        c["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    if probes:
        path = u.profile.health_path
        # Start-up gets the model's whole start-up timeout; liveness is lenient because
        # SGLang's /health runs a 1-token generation that can be slow under load.
        c["startupProbe"] = http_probe(path, 10, max(1, u.startup_s // 10), 5)
        c["readinessProbe"] = http_probe(path, 10, 3, 5)
        c["livenessProbe"] = http_probe(path, 30, 5, 10)
    return c


def engine_pod_spec(u: EngineUnit, container: Obj, opts: K8sOptions) -> Obj:
    volumes: list[Obj] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": opts.shm_size}},
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": opts.model_cache_claim}},
    ]
    volumes += [{"name": f"model-dir-{i}", "hostPath": {"path": p, "type": "Directory"}}
                for i, p in enumerate(u.local_paths)]
    if u.profile.disaggregation_ib_device:
        volumes.append({"name": "infiniband", "hostPath": {"path": IB_DEVICES, "type": "Directory"}})
    spec: Obj = {"terminationGracePeriodSeconds": 60, "containers": [container], "volumes": volumes}
    if opts.host_network:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    if opts.node_selector:
        spec["nodeSelector"] = dict(opts.node_selector)
    if opts.tolerations:
        spec["tolerations"] = [dict(t) for t in opts.tolerations]
    return spec


def service(name: str, selector: dict[str, str], port: int, opts: K8sOptions, labels: dict[str, str],
            bootstrap_port: int | None = None) -> Obj:
    ports: list[Obj] = [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]
    if bootstrap_port is not None:
        ports.append({"name": "bootstrap", "port": bootstrap_port, "targetPort": "bootstrap", "protocol": "TCP"})
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, opts, labels),
            "spec": {"selector": selector, "ports": ports}}


def engine_service(u: EngineUnit, selector: dict[str, str], opts: K8sOptions) -> Obj:
    """The engine's Service (http, and bootstrap for prefill): for people and tools; the
    gateway itself routes to each pod."""
    return service(u.name, selector, u.port, opts, engine_labels(u),
                   u.bootstrap_port if u.role == "prefill" else None)


def gateway_workers(units: list[EngineUnit], selectors: dict[str, dict[str, str]],
                    opts: K8sOptions) -> dict[str, dict[str, Any]]:
    """What the gateway's fleet file says about each model's workers: a `discovery` per unit
    (aggregated model, or each group of a PD model). `selectors` maps each unit's name to the
    labels that select its serving pods; prefill pods announce their bootstrap port."""
    return worker_entries(units, lambda u: {"discovery": {
        "namespace": opts.namespace, "selector": selector_string(selectors[u.name]), "port": u.port}})


def to_files(objs: list[Obj], flavor: str) -> Files:
    """One file per object: `<kind>-<name>.yaml`."""
    files: Files = {}
    for o in objs:
        path = f"{o['kind'].lower()}-{o['metadata']['name']}.yaml"
        assert path not in files, path
        files[path] = header(f"k8s --flavor {flavor}") + dump_yaml(o)
    return files
