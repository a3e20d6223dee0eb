"""Kubernetes, NVIDIA Dynamo flavour: one DynamoGraphDeployment (nvidia.com/v1alpha1) per
model, aggregated (one `decode` worker service) or disaggregated (`prefill` + `decode`
workers with `subComponentType`), each with Dynamo's Frontend. Workers run
`python3 -m dynamo.sglang` with the SGLang profile's flags; the operator exposes the
frontend as the Service `<name>-frontend:8000`, which the sglfleet gateway routes to.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from sglfleet.config import FleetConfig
from sglfleet.deploy.k8s_common import MODEL_LABEL, K8sOptions, Obj, meta, to_files
from sglfleet.deploy.k8s_gateway import gateway_objects
from sglfleet.deploy.plan import EngineUnit, Files, engine_units, slug

FRONTEND_PORT = 8000
WORKDIR = "/workspace/examples/backends/sglang"
_DROP = {"--port", "--api-key"}  # Dynamo workers speak to the frontend, not HTTP clients


def worker_args(u: EngineUnit) -> list[str]:
    argv = u.argv(host="0.0.0.0")[3:]  # drop `python3 -m sglang.launch_server`
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in _DROP:
            skip = True
            continue
        out.append(a)
    return out


def _worker(u: EngineUnit, opts: K8sOptions) -> Obj:
    svc: Obj = {
        "componentType": "worker",
        "replicas": u.replicas,
        "envFromSecret": opts.hf_secret,
        "resources": {"limits": {"gpu": str(u.gpus_per_node)}},
        "extraPodSpec": {"mainContainer": {
            "image": opts.dynamo_image, "workingDir": WORKDIR,
            "command": ["python3", "-m", "dynamo.sglang"], "args": worker_args(u)}},
    }
    if u.role != "server":
        svc["subComponentType"] = u.role
    if u.profile.nnodes > 1:
        svc["multinode"] = {"nodeCount": u.profile.nnodes}
    return svc


def _dgd(name: str, units: list[EngineUnit], opts: K8sOptions) -> Obj:
    services: dict[str, Any] = {"Frontend": {
        "componentType": "frontend", "replicas": 1,
        "extraPodSpec": {"mainContainer": {"image": opts.dynamo_image}}}}
    for u in units:
        services["decode" if u.role == "server" else u.role] = _worker(u, opts)
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
            "metadata": meta(name, opts, {MODEL_LABEL: slug(units[0].model.name)}),
            "spec": {"backendFramework": "sglang", "services": services}}


def render(cfg: FleetConfig, opts: K8sOptions | None = None) -> Files:
    opts = opts or K8sOptions()
    objs: list[Obj] = []
    workers: dict[str, dict[str, Any]] = {}
    for model_name, group in groupby(engine_units(cfg), key=lambda u: u.model.name):
        units = list(group)
        mode = "disagg" if any(u.role != "server" for u in units) else "agg"
        name = f"{slug(model_name, 40)}-{mode}"
        objs.append(_dgd(name, units, opts))
        url = f"http://{name}-frontend.{opts.namespace}.svc.cluster.local:{FRONTEND_PORT}"
        workers[model_name] = {"urls": [url]}
    return to_files(objs + gateway_objects(cfg, workers, opts), "dynamo")
