"""The rendered gateway is highly available: replicas spread over nodes, a disruption budget,
probes on /ready and /health, a shutdown window that matches `sglfleet serve`, optional HPA."""

from __future__ import annotations

from typing import Any

import pytest

from sglfleet.deploy import k8s_dynamo, k8s_lws, k8s_plain
from sglfleet.deploy.k8s_common import K8sOptions
from sglfleet.deploy.plan import DeployError
from tests.deploy.test_k8s import docs, validate_core

pytest.importorskip("kubernetes_validate")
RENDERERS = {"plain": k8s_plain.render, "lws": k8s_lws.render, "dynamo": k8s_dynamo.render}


def gateway(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == "sglfleet-gateway")


@pytest.mark.parametrize("flavor", sorted(RENDERERS))
def test_gateway_is_replicated_spread_and_protected(flavor: str, aggregated: Any) -> None:
    objs = docs(RENDERERS[flavor](aggregated, K8sOptions()))
    dep, pdb = gateway(objs, "Deployment"), gateway(objs, "PodDisruptionBudget")
    for o in (dep, pdb):
        validate_core(o)
    assert dep["spec"]["replicas"] >= 2
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    by_key = {c["topologyKey"]: c for c in spread}
    assert by_key["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert by_key["kubernetes.io/hostname"]["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert not any(o["kind"] == "HorizontalPodAutoscaler" for o in objs)


def test_shutdown_window_matches_the_gateway(aggregated: Any) -> None:
    spec = gateway(docs(k8s_plain.render(aggregated)), "Deployment")["spec"]["template"]["spec"]
    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # Kubernetes counts the preStop hook inside the grace period: sleep, drain, clean up.
    grace = aggregated.gateway.shutdown_grace_s
    assert spec["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + grace + 5


def test_optional_cpu_autoscaler(aggregated: Any) -> None:
    objs = docs(k8s_plain.render(aggregated, K8sOptions(gateway_replicas=3, gateway_hpa_max=8)))
    hpa, dep = gateway(objs, "HorizontalPodAutoscaler"), gateway(objs, "Deployment")
    validate_core(hpa)
    validate_core(dep)
    assert hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["maxReplicas"] == 8
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sglfleet-gateway"}
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in dep["spec"]  # the autoscaler owns the count
    with pytest.raises(DeployError, match="below --gateway-replicas"):
        k8s_plain.render(aggregated, K8sOptions(gateway_replicas=3, gateway_hpa_max=2))
