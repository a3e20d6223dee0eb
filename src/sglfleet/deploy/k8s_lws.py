"""Kubernetes, LeaderWorkerSet flavour: multi-node tensor parallel SGLang.

One LeaderWorkerSet per engine with `size` = the profile's `nnodes`. Every pod runs the same
launch argv plus `--dist-init-addr $(LWS_LEADER_ADDRESS):PORT --nnodes $(LWS_GROUP_SIZE)
--node-rank $(LWS_WORKER_INDEX)` (LWS injects these variables). A group restarts as a whole
(`RecreateGroupOnPodRestart`); only the leader (worker index 0) serves HTTP, so the Service
and the gateway's discovery select leader pods.

A prefill/decode model becomes two LeaderWorkerSets, `<name>-prefill` and `<name>-decode`
(each role its own group size); the leader of a prefill group runs the bootstrap server, so
the gateway's prefill group discovers prefill leaders and reads their bootstrap port.
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
from sglfleet.deploy.plan import EngineUnit, Files, engine_units

DIST_INIT_PORT = 20000
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
_LWS_ARGS = ["--dist-init-addr", f"$(LWS_LEADER_ADDRESS):{DIST_INIT_PORT}",
             "--nnodes", "$(LWS_GROUP_SIZE)", "--node-rank", "$(LWS_WORKER_INDEX)"]


def _multinode(u: EngineUnit) -> EngineUnit:
    # The LWS variables replace the profile's own multi-node flags.
    prof = u.profile.model_copy(update={"nnodes": 1, "node_rank": 0, "dist_init_addr": None})
    return EngineUnit(model=u.model, name=u.name, role=u.role, profile=prof)


def _lws(u: EngineUnit, opts: K8sOptions) -> Obj:
    size = max(1, u.profile.nnodes)
    labels = engine_labels(u)
    mu = _multinode(u)
    leader = engine_container(mu, opts, extra_args=_LWS_ARGS)
    # Non-zero ranks answer /health from a dummy server once their schedulers are up.
    worker = engine_container(mu, opts, extra_args=_LWS_ARGS)
    for c in (leader, worker):
        c["resources"]["limits"]["nvidia.com/gpu"] = str(u.gpus_per_node)
        c["resources"]["requests"]["nvidia.com/gpu"] = str(u.gpus_per_node)
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": meta(u.name, opts, labels),
        "spec": {
            "replicas": u.replicas,
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": size,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {"metadata": pod_metadata(labels, u),
                                   "spec": engine_pod_spec(u, leader, opts)},
                "workerTemplate": {"metadata": {"labels": labels},
                                   "spec": engine_pod_spec(u, worker, opts)},
            },
        },
    }


def render(cfg: FleetConfig, opts: K8sOptions | None = None) -> Files:
    opts = opts or K8sOptions()
    units = engine_units(cfg)
    objs: list[Obj] = []
    selectors: dict[str, dict[str, str]] = {}
    for u in units:
        objs.append(_lws(u, opts))
        leaders = {LWS_NAME_LABEL: u.name, LWS_INDEX_LABEL: "0"}
        objs.append(engine_service(u, leaders, opts))
        selectors[u.name] = leaders
    return to_files(objs + gateway_objects(cfg, gateway_workers(units, selectors, opts), opts), "lws")
