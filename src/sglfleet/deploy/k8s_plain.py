"""Kubernetes, plain flavour: one Deployment (Recreate: GPUs cannot be double-booked by a
rolling update) + Service per SGLang engine, and the gateway, which finds the engine pods
through the Kubernetes API (label selector, watch) and routes to each pod directly.

A prefill/decode model becomes two Deployments, `<name>-prefill` and `<name>-decode`, each
with its role's SGLang flags (`--disaggregation-mode`, transfer backend, bootstrap port, IB
device); the gateway's fleet file gets a PD model whose `prefill` and `decode` groups
discover their pods by the role label.
"""

from __future__ import annotations

from sglfleet.config import FleetConfig
from sglfleet.deploy.k8s_common import (
    K8sOptions,
    Obj,
    engine_container,
    engine_labels,
    engine_pod_spec,
    engine_service,
    gateway_workers,
    meta,
    pod_metadata,
    to_files,
)
from sglfleet.deploy.k8s_gateway import gateway_objects
from sglfleet.deploy.plan import Files, engine_units


def render(cfg: FleetConfig, opts: K8sOptions | None = None) -> Files:
    opts = opts or K8sOptions()
    units = engine_units(cfg)
    objs: list[Obj] = []
    selectors: dict[str, dict[str, str]] = {}
    for u in units:
        labels = engine_labels(u)
        spec = engine_pod_spec(u, engine_container(u, opts), opts)
        objs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(u.name, opts, labels),
                     "spec": {"replicas": u.replicas, "strategy": {"type": "Recreate"},
                              "selector": {"matchLabels": labels},
                              "template": {"metadata": pod_metadata(labels, u), "spec": spec}}})
        objs.append(engine_service(u, labels, opts))
        selectors[u.name] = labels
    return to_files(objs + gateway_objects(cfg, gateway_workers(units, selectors, opts), opts), "plain")
