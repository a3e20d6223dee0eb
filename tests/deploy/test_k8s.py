"""Kubernetes manifests: core objects against the official schemas (kubernetes-validate),
LeaderWorkerSet against its CRD schema, DynamoGraphDeployment structurally."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sglfleet.config import parse_config
from sglfleet.deploy import k8s_dynamo, k8s_lws, k8s_plain
from sglfleet.deploy.k8s_common import K8sOptions
from sglfleet.deploy.plan import DeployError
from tests.deploy.golden import render_golden

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (PyPI) validates manifests")
jsonschema = pytest.importorskip("jsonschema")
SCHEMAS = Path(__file__).parent / "schemas"
K8S_VERSION = "1.33.0"

# Written from the documented v1alpha1 fields (control_planes.md §4.4); see schemas/SOURCES.md.
DGD_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "nvidia.com/v1alpha1"}, "kind": {"const": "DynamoGraphDeployment"},
        "spec": {"type": "object", "additionalProperties": False, "required": ["services"], "properties": {
            "backendFramework": {"enum": ["sglang", "vllm", "trtllm"]},
            "services": {"type": "object", "minProperties": 2, "additionalProperties": {
                "type": "object", "additionalProperties": False, "required": ["componentType"], "properties": {
                    "componentType": {"enum": ["frontend", "worker", "planner", "main"]},
                    "subComponentType": {"enum": ["prefill", "decode"]},
                    "replicas": {"type": "integer", "minimum": 0},
                    "envFromSecret": {"type": "string"},
                    "multinode": {"type": "object", "properties": {"nodeCount": {"type": "integer"}}},
                    "resources": {"type": "object", "properties": {"limits": {"type": "object", "properties": {
                        "gpu": {"type": "string", "pattern": "^[0-9]+$"}}}}},
                    "extraPodSpec": {"type": "object", "required": ["mainContainer"]},
                }}},
        }},
    },
}


def docs(files: dict[str, str]) -> list[dict[str, Any]]:
    return [yaml.safe_load(text) for text in files.values()]


def flag(args: list[str], name: str) -> str:
    assert args.count(name) == 1, f"{name} appears {args.count(name)} times"
    return args[args.index(name) + 1]


def selects(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selector semantics (what the rendered selectors use)."""
    return all(labels.get(k) == v for k, _, v in (term.partition("=") for term in selector.split(",")))


def gateway_config(objs: list[dict[str, Any]]) -> Any:
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "sglfleet-gateway")
    return parse_config(yaml.safe_load(cm["data"]["fleet.yaml"]), env={"SGLFLEET_API_KEY": "k"})


def validate_core(obj: dict[str, Any]) -> None:
    kv.validate(obj, K8S_VERSION, strict=True)


def validate_container(container: dict[str, Any]) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
           "spec": {"containers": [{"name": "main", **container}]}}
    validate_core(pod)


@functools.cache
def lws_validator() -> Any:
    schema = json.loads(gzip.decompress((SCHEMAS / "leaderworkerset-v1.schema.json.gz").read_bytes()))
    return jsonschema.Draft7Validator(schema)  # CRD schemas are OpenAPI v3 (a JSON Schema draft-4/7 subset)


def test_plain_objects_match_the_kubernetes_schemas(aggregated: Any) -> None:
    objs = docs(k8s_plain.render(aggregated))
    for o in objs:
        validate_core(o)
    kinds = sorted({o["kind"] for o in objs})
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Service",
                     "ServiceAccount"]
    deploy = next(o for o in objs if o["metadata"]["name"] == "sglang-qwen3-6-35b-a3b" and o["kind"] == "Deployment")
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    pod = deploy["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 600
    assert c["args"][c["args"].index("--host") + 1] == "0.0.0.0"
    assert c["args"][c["args"].index("--api-key") + 1] == "$(SGLANG_API_KEY)"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert any(e["name"] == "HF_TOKEN" and "secretKeyRef" in e["valueFrom"] for e in c["env"])


def test_gateway_discovers_engine_pods_with_rbac(aggregated: Any) -> None:
    objs = docs(k8s_plain.render(aggregated, K8sOptions(namespace="llm")))
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    cfg = parse_config(yaml.safe_load(cm["data"]["fleet.yaml"]), env={"SGLFLEET_API_KEY": "k"})
    disc = cfg.model("deepseek-r1-distill-llama-8b").discovery
    assert disc is not None and disc.namespace == "llm" and "sglfleet.io/model=deepseek" in disc.selector
    dep = next(o for o in objs
               if o["kind"] == "Deployment" and o["metadata"]["name"] == "sglang-deepseek-r1-distill-llama-8b")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(f"{k}={v}" in disc.selector for k, v in labels.items())  # the selector finds the pods
    role = next(o for o in objs if o["kind"] == "Role")
    assert role["rules"][0]["verbs"] == ["get", "list", "watch"]
    gw = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "sglfleet-gateway")
    assert gw["spec"]["template"]["spec"]["serviceAccountName"] == "sglfleet-gateway"
    env = gw["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["SGLFLEET_API_KEY"]


def test_lws_matches_its_crd_schema_and_core_schemas(aggregated: Any) -> None:
    objs = docs(k8s_lws.render(aggregated))
    lws = [o for o in objs if o["kind"] == "LeaderWorkerSet"]
    assert len(lws) == 3
    for o in objs:
        if o["kind"] == "LeaderWorkerSet":
            lws_validator().validate(o)
            tpl = o["spec"]["leaderWorkerTemplate"]
            for role in ("leaderTemplate", "workerTemplate"):
                validate_core({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": tpl[role]["spec"]})
        else:
            validate_core(o)
    big = next(o for o in lws if o["metadata"]["name"] == "sglang-big-multinode")
    tpl = big["spec"]["leaderWorkerTemplate"]
    assert tpl["size"] == 2 and tpl["restartPolicy"] == "RecreateGroupOnPodRestart"
    c = tpl["workerTemplate"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "8"
    args = c["args"]
    assert args[args.index("--dist-init-addr") + 1] == "$(LWS_LEADER_ADDRESS):20000"
    assert args[args.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"
    assert args.count("--nnodes") == 1 and "--tp-size" in args


def test_lws_schema_rejects_a_broken_object() -> None:
    with pytest.raises(jsonschema.ValidationError):
        lws_validator().validate({"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                                  "spec": {"leaderWorkerTemplate": {"size": "two"}}})


def test_dynamo_golden_is_structurally_valid() -> None:
    objs = docs(render_golden("deploy-deepseek", "k8s", "dynamo", K8sOptions()))
    dgds = {o["metadata"]["name"]: o for o in objs if o["kind"] == "DynamoGraphDeployment"}
    for o in objs:
        if o["kind"] == "DynamoGraphDeployment":
            jsonschema.validate(o, DGD_SCHEMA)
            validate_core({"apiVersion": "v1", "kind": "ConfigMap", "metadata": o["metadata"]})
            for svc in o["spec"]["services"].values():
                validate_container(svc["extraPodSpec"]["mainContainer"])
        else:
            validate_core(o)
    agg = dgds["deepseek-r1-distill-llama-8b-agg"]["spec"]["services"]
    assert sorted(agg) == ["Frontend", "decode"] and "subComponentType" not in agg["decode"]
    pd = dgds["deepseek-r1-distill-llama-8b-pd-disagg"]["spec"]["services"]
    assert pd["prefill"]["subComponentType"] == "prefill" and pd["decode"]["subComponentType"] == "decode"
    args = pd["decode"]["extraPodSpec"]["mainContainer"]["args"]
    assert args[args.index("--disaggregation-mode") + 1] == "decode" and "--port" not in args
    assert pd["prefill"]["extraPodSpec"]["mainContainer"]["command"] == ["python3", "-m", "dynamo.sglang"]


def test_dynamo_gateway_routes_to_the_frontends(aggregated: Any) -> None:
    objs = docs(k8s_dynamo.render(aggregated))
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    cfg = parse_config(yaml.safe_load(cm["data"]["fleet.yaml"]), env={"SGLFLEET_API_KEY": "k"})
    assert cfg.model("qwen3.6-35b-a3b").urls == (
        "http://qwen3-6-35b-a3b-agg-frontend.sglfleet.svc.cluster.local:8000",)
    assert not any(o["kind"] == "Role" for o in objs)  # no discovery, no RBAC


def test_plain_renders_pd_roles_that_the_gateway_discovers() -> None:
    objs = docs(render_golden("deploy-deepseek", "k8s", "plain", K8sOptions()))
    for o in objs:
        validate_core(o)
    deps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}
    prefill = deps["sglang-deepseek-r1-distill-llama-8b-pd-prefill"]
    decode = deps["sglang-deepseek-r1-distill-llama-8b-pd-decode"]
    p_tpl, d_tpl = prefill["spec"]["template"], decode["spec"]["template"]
    pc, dc = p_tpl["spec"]["containers"][0], d_tpl["spec"]["containers"][0]
    assert flag(pc["args"], "--disaggregation-mode") == "prefill"
    assert flag(dc["args"], "--disaggregation-mode") == "decode"
    for c in (pc, dc):
        assert flag(c["args"], "--disaggregation-transfer-backend") == "nixl"
        assert flag(c["args"], "--disaggregation-bootstrap-port") == "8998"
    assert {"name": "bootstrap", "containerPort": 8998} in pc["ports"]
    assert all(p["name"] != "bootstrap" for p in dc["ports"])
    assert p_tpl["metadata"]["annotations"] == {"sglfleet.io/bootstrap-port": "8998"}
    assert "annotations" not in d_tpl["metadata"]
    svc = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == prefill["metadata"]["name"])
    assert [p["name"] for p in svc["spec"]["ports"]] == ["http", "bootstrap"]

    gw = gateway_config(objs)
    pd = gw.model("deepseek-r1-distill-llama-8b-pd")
    assert pd.engine == "external" and pd.prefill is not None and pd.decode is not None
    assert pd.prefill.discovery is not None and pd.decode.discovery is not None
    assert pd.prefill.policy == "cache_aware" and pd.decode.policy == "least_load"
    assert selects(pd.prefill.discovery.selector, p_tpl["metadata"]["labels"])
    assert not selects(pd.prefill.discovery.selector, d_tpl["metadata"]["labels"])
    assert selects(pd.decode.discovery.selector, d_tpl["metadata"]["labels"])
    assert not selects(pd.decode.discovery.selector, p_tpl["metadata"]["labels"])
    assert (pd.prefill.discovery.port, pd.decode.discovery.port) == (30000, 30001)
    agg = gw.model("deepseek-r1-distill-llama-8b").discovery
    assert agg is not None and not selects(agg.selector, p_tpl["metadata"]["labels"])
    assert any(o["kind"] == "Role" for o in objs)  # discovery needs the pods RBAC


def test_lws_renders_pd_as_two_leader_worker_sets(tmp_path: Path) -> None:
    objs = docs(render_golden("deploy-deepseek", "k8s", "lws", K8sOptions()))
    lws = {o["metadata"]["name"]: o for o in objs if o["kind"] == "LeaderWorkerSet"}
    assert sorted(lws) == ["sglang-deepseek-r1-distill-llama-8b", "sglang-deepseek-r1-distill-llama-8b-pd-decode",
                           "sglang-deepseek-r1-distill-llama-8b-pd-prefill"]
    for o in objs:
        if o["kind"] == "LeaderWorkerSet":
            lws_validator().validate(o)
            for role in ("leaderTemplate", "workerTemplate"):
                validate_core({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                               "spec": o["spec"]["leaderWorkerTemplate"][role]["spec"]})
        else:
            validate_core(o)
    leader = lws["sglang-deepseek-r1-distill-llama-8b-pd-prefill"]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    assert leader["metadata"]["annotations"] == {"sglfleet.io/bootstrap-port": "8998"}
    pd = gateway_config(objs).model("deepseek-r1-distill-llama-8b-pd")
    assert pd.prefill is not None and pd.prefill.discovery is not None
    # The gateway finds the prefill leaders (they run the bootstrap server), not the workers.
    leader_pod = {"leaderworkerset.sigs.k8s.io/name": "sglang-deepseek-r1-distill-llama-8b-pd-prefill",
                  "leaderworkerset.sigs.k8s.io/worker-index": "0", **leader["metadata"]["labels"]}
    assert selects(pd.prefill.discovery.selector, leader_pod)
    assert not selects(pd.prefill.discovery.selector, {**leader_pod, "leaderworkerset.sigs.k8s.io/worker-index": "1"})


def test_ib_device_multinode_pd_is_valid(tmp_path: Path) -> None:
    from tests.deploy.conftest import fleet_from

    cfg = fleet_from(tmp_path, {"models": [{
        "name": "dsv3", "engine": "sglang", "preset": "deepseek-r1-distill-llama-8b-pd",
        "sglang": {"model_path": "deepseek-ai/DeepSeek-V3", "tp": 16, "nnodes": 2,
                   "disaggregation_transfer_backend": "mooncake", "disaggregation_ib_device": "mlx5_0,mlx5_1",
                   "disaggregation_bootstrap_port": 9100}}]})
    objs = docs(k8s_lws.render(cfg, K8sOptions(host_network=True)))
    for o in objs:
        if o["kind"] == "LeaderWorkerSet":
            lws_validator().validate(o)
            tpl = o["spec"]["leaderWorkerTemplate"]
            assert tpl["size"] == 2
            for role in ("leaderTemplate", "workerTemplate"):
                spec = tpl[role]["spec"]
                validate_core({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec})
                c = spec["containers"][0]
                assert flag(c["args"], "--disaggregation-ib-device") == "mlx5_0,mlx5_1"
                assert flag(c["args"], "--disaggregation-transfer-backend") == "mooncake"
                assert c["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
                assert {"name": "infiniband", "mountPath": "/dev/infiniband"} in c["volumeMounts"]
                assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
        else:
            validate_core(o)
    prefill = next(o for o in objs if o["kind"] == "LeaderWorkerSet" and o["metadata"]["name"].endswith("-prefill"))
    leader = prefill["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    assert leader["metadata"]["annotations"] == {"sglfleet.io/bootstrap-port": "9100"}
    assert {"name": "bootstrap", "containerPort": 9100} in leader["spec"]["containers"][0]["ports"]


def test_a_pd_model_without_its_decode_role_is_refused(tmp_path: Path) -> None:
    from tests.deploy.conftest import fleet_from

    cfg = fleet_from(tmp_path, {"models": [{"name": "half", "engine": "sglang", "sglang": {
        "model_path": "x/y", "disaggregation_mode": "prefill"}}]})
    with pytest.raises(DeployError, match="prefill server but no decode server"):
        k8s_plain.render(cfg)
