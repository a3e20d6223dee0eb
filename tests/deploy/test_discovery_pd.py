"""The rendered Kubernetes PD deployment end to end on the gateway side: a fake API server
serves pods made from the rendered prefill and decode Deployments, and a Fleet loaded from
the rendered gateway fleet file forms the PD pool from them (roles, bootstrap port)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import yaml

from sglfleet.config import parse_config
from sglfleet.deploy import k8s_lws, k8s_plain
from sglfleet.deploy.k8s_common import K8sOptions
from sglfleet.deploy.plan import load_fleet
from sglfleet.fleet import Fleet
from sglfleet.routing.pd import PDPool
from sglfleet.upstream.pd_dispatch import bootstrap_fields
from tests.deploy.fake_k8s import FakeKubeAPI
from tests.deploy.golden import EXAMPLES

PD_MODEL = "deepseek-r1-distill-llama-8b-pd"
LOOPBACK = "127.0.0.1"  # every pod IP: tests never reach another address


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    server = FakeKubeAPI(token=None)  # the fleet runs outside a pod: no service-account token
    await server.start()
    yield server
    await server.stop()


async def until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def rendered(flavor: str) -> list[dict[str, Any]]:
    render = {"plain": k8s_plain.render, "lws": k8s_lws.render}[flavor]
    files = render(load_fleet(EXAMPLES / "deploy-deepseek.yaml"), K8sOptions(namespace="llm"))
    return [yaml.safe_load(t) for t in files.values()]


def serving_pod_templates(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Workload name -> the metadata its serving pods carry (for LWS: the leader, with the
    labels the LWS controller adds)."""
    out: dict[str, dict[str, Any]] = {}
    for o in objs:
        name = o["metadata"]["name"]
        if o["kind"] == "Deployment" and name != "sglfleet-gateway":
            out[name] = o["spec"]["template"]["metadata"]
        elif o["kind"] == "LeaderWorkerSet":
            md = dict(o["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"])
            md["labels"] = {**md["labels"], "leaderworkerset.sigs.k8s.io/name": name,
                            "leaderworkerset.sigs.k8s.io/worker-index": "0"}
            out[name] = md
    return out


def gateway_cfg(objs: list[dict[str, Any]], api_url: str) -> Any:
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "sglfleet-gateway")
    data = yaml.safe_load(cm["data"]["fleet.yaml"])
    for m in data["models"]:  # in a pod the gateway uses the in-cluster API; here the fake one
        for block in (m, m.get("prefill") or {}, m.get("decode") or {}):
            if "discovery" in block:
                block["discovery"]["api_url"] = api_url
    return parse_config(data, env={})


@pytest.mark.parametrize("flavor", ["plain", "lws"])
async def test_rendered_pd_pods_form_the_pd_pool(api: FakeKubeAPI, flavor: str) -> None:
    objs = rendered(flavor)
    templates = serving_pod_templates(objs)
    prefill_md = templates[f"sglang-{PD_MODEL}-prefill"]
    decode_md = templates[f"sglang-{PD_MODEL}-decode"]
    api.set_pod("prefill-0", LOOPBACK, ready=True, labels=prefill_md["labels"],
                annotations=prefill_md.get("annotations"))
    api.set_pod("decode-0", LOOPBACK, ready=True, labels=decode_md["labels"], annotations=decode_md.get("annotations"))
    agg_md = templates["sglang-deepseek-r1-distill-llama-8b"]
    api.set_pod("agg-0", LOOPBACK, ready=False, labels=agg_md["labels"])
    if flavor == "lws":  # a non-leader pod of the prefill group is not a worker
        worker_labels = {**prefill_md["labels"], "leaderworkerset.sigs.k8s.io/worker-index": "1"}
        api.set_pod("prefill-0-1", LOOPBACK, ready=True, labels=worker_labels)

    fleet = Fleet(gateway_cfg(objs, api.url))
    await fleet.start(wait=False)
    try:
        pool = next(p for p in fleet.registry if p.name == PD_MODEL)
        assert isinstance(pool, PDPool)

        def sides() -> tuple[set[tuple[str, int | None]], set[tuple[str, int | None]]]:
            return ({(w.url, w.bootstrap_port) for w in pool.prefill_workers},
                    {(w.url, w.bootstrap_port) for w in pool.decode_workers})

        await until(lambda: sides() == ({(f"http://{LOOPBACK}:30000", 8998)}, {(f"http://{LOOPBACK}:30001", None)}))
        assert bootstrap_fields(pool.prefill_workers[0], random.Random(0))["bootstrap_port"] == 8998
        assert len(fleet.watchers) == 3  # prefill group, decode group, the aggregated model
        await until(lambda: len(api.watchers) == 3)

        api.delete_pod("prefill-0")  # the prefill side goes away; decode stays
        await until(lambda: sides() == (set(), {(f"http://{LOOPBACK}:30001", None)}))
        assert not pool.has_eligible()
        api.set_pod("prefill-1", LOOPBACK, ready=True, labels=prefill_md["labels"],
                    annotations={"sglfleet.io/bootstrap-port": "9100"})
        await until(lambda: sides()[0] == {(f"http://{LOOPBACK}:30000", 9100)})
        selectors = {r.get("labelSelector") for r in api.requests}
        assert len(selectors) == 3
    finally:
        await fleet.stop()
