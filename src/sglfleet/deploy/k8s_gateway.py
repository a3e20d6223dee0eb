"""The gateway on Kubernetes, highly available: ConfigMap with its fleet file, RBAC when it
discovers pods, a Deployment of `gateway_replicas` (2) spread across nodes, a
PodDisruptionBudget, an optional CPU HorizontalPodAutoscaler, and its Service.

Rolling updates and node drains drop no request that fits the shutdown window: a
terminating pod first keeps serving for `PRESTOP_S` while Service endpoints and ingress
controllers forget it (`preStop` sleep), then gets SIGTERM and finishes its in-flight
requests for up to the fleet's `gateway.shutdown_grace_s` (`sglfleet serve` stops admitting,
answers /ready 503, lets requests finish, then ends what is left with an error event), then
closes its engines' connections; `terminationGracePeriodSeconds` covers all three.
A new pod takes traffic only once `/ready` answers; `maxUnavailable: 0`
keeps the full count serving during a rollout.
"""

from __future__ import annotations

from typing import Any

from sglfleet.config import FleetConfig
from sglfleet.deploy.k8s_common import APP_LABEL, K8sOptions, Obj, http_probe, meta, service
from sglfleet.deploy.plan import GATEWAY_CONFIG_PATH, GATEWAY_NAME, DeployError, dump_yaml, env_refs, gateway_fleet

PRESTOP_S = 10  # endpoint removal reaches kube-proxy and ingress controllers within seconds
CLEANUP_S = 10  # last bytes of cut streams, uvicorn's own stop, then health checkers, watchers, sessions


def termination_grace_s(cfg: FleetConfig) -> int:
    return PRESTOP_S + int(cfg.gateway.shutdown_grace_s + 0.999) + CLEANUP_S


def _discovers(workers: dict[str, dict[str, Any]]) -> bool:
    return any("discovery" in w or any("discovery" in w.get(r, {}) for r in ("prefill", "decode"))
               for w in workers.values())


def _rbac(opts: K8sOptions, labels: dict[str, str]) -> list[Obj]:
    role = f"{GATEWAY_NAME}-pods"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(GATEWAY_NAME, opts, labels)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(role, opts, labels),
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(role, opts, labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": GATEWAY_NAME, "namespace": opts.namespace}]},
    ]


def _spread(labels: dict[str, str]) -> list[Obj]:
    """Replicas on different nodes (hard; tainted GPU nodes do not count as places to spread
    to), and across zones where there are several (soft). Each rollout spreads on its own."""
    common: Obj = {"maxSkew": 1, "labelSelector": {"matchLabels": labels}, "matchLabelKeys": ["pod-template-hash"]}
    return [
        {**common, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
         "nodeTaintsPolicy": "Honor"},
        {**common, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"},
    ]


def _pod(fleet_text: str, port: int, opts: K8sOptions, labels: dict[str, str], discovers: bool,
         grace_s: int) -> Obj:
    container: Obj = {
        "name": "gateway", "image": opts.gateway_image,
        "command": ["sglfleet", "serve", "--config", GATEWAY_CONFIG_PATH],
        "ports": [{"name": "http", "containerPort": port}],
        "env": [{"name": n, "valueFrom": {"secretKeyRef": {"name": opts.gateway_secret, "key": n}}}
                for n in env_refs(fleet_text)],
        "readinessProbe": http_probe("/ready", 5, 3, 3),
        "livenessProbe": http_probe("/health", 10, 3, 5),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_S)]}}},
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/sglfleet", "readOnly": True}],
    }
    pod: Obj = {"containers": [container], "volumes": [{"name": "config", "configMap": {"name": GATEWAY_NAME}}],
                "terminationGracePeriodSeconds": grace_s, "topologySpreadConstraints": _spread(labels)}
    if discovers:
        pod["serviceAccountName"] = GATEWAY_NAME
    return pod


def gateway_objects(cfg: FleetConfig, workers: dict[str, dict[str, Any]], opts: K8sOptions) -> list[Obj]:
    """ConfigMap, RBAC (when it discovers pods), Deployment, PodDisruptionBudget, HPA (optional), Service."""
    if opts.gateway_replicas < 1:
        raise DeployError("the gateway needs at least 1 replica (--gateway-replicas)")
    if opts.gateway_hpa_max is not None and opts.gateway_hpa_max < opts.gateway_replicas:
        raise DeployError(f"--gateway-hpa-max {opts.gateway_hpa_max} is below --gateway-replicas "
                          f"{opts.gateway_replicas} (the autoscaler's minimum)")
    port = cfg.gateway.port or 8000
    fleet_text = dump_yaml(gateway_fleet(cfg, port=port, workers=workers))
    labels = {APP_LABEL: GATEWAY_NAME}
    discovers = _discovers(workers)
    objs: list[Obj] = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(GATEWAY_NAME, opts, labels),
                        "data": {"fleet.yaml": fleet_text}}]
    if discovers:
        objs += _rbac(opts, labels)
    spec: Obj = {"replicas": opts.gateway_replicas, "selector": {"matchLabels": labels},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {"metadata": {"labels": labels}, "spec": _pod(fleet_text, port, opts, labels, discovers,
                                                                            termination_grace_s(cfg))}}
    if opts.gateway_hpa_max is not None:
        del spec["replicas"]  # the autoscaler owns the count; `kubectl apply` must not reset it
    objs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(GATEWAY_NAME, opts, labels),
                 "spec": spec})
    # maxUnavailable (not minAvailable): a node drain never blocks, even at 1 replica.
    objs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(GATEWAY_NAME, opts, labels),
                 "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}})
    if opts.gateway_hpa_max is not None:
        objs.append({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": meta(GATEWAY_NAME, opts, labels),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": GATEWAY_NAME},
                     "minReplicas": opts.gateway_replicas, "maxReplicas": opts.gateway_hpa_max,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": opts.gateway_hpa_cpu_percent}}}]}})
    objs.append(service(GATEWAY_NAME, labels, port, opts, labels))
    return objs
