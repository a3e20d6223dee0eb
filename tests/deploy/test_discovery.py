"""Kubernetes discovery against a fake API server speaking the real list/watch protocol:
pods becoming Ready/unready/deleted add and remove workers on a real Fleet's pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sglfleet.config import FleetConfig, KubernetesDiscoveryConfig, ModelConfig
from sglfleet.deploy.discovery import DiscoveryError, Endpoint, PodWatcher, attach, pod_endpoint, pod_url
from sglfleet.fleet import Fleet
from tests.deploy.fake_k8s import FakeKubeAPI, pod

LABELS = {"app.kubernetes.io/name": "sglang", "sglfleet.io/model": "qwen"}
SELECTOR = "app.kubernetes.io/name=sglang,sglfleet.io/model=qwen"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeKubeAPI]:
    server = FakeKubeAPI(token="sa-token")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def sa_dir(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text("sa-token\n")
    return tmp_path


async def until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_pods_become_workers_on_a_fleet(api: FakeKubeAPI, sa_dir: Path) -> None:
    api.set_pod("qwen-0", "10.1.0.1", ready=True, labels=LABELS)
    api.set_pod("qwen-1", "10.1.0.2", ready=False, labels=LABELS)
    api.set_pod("other", "10.1.0.9", ready=True, labels={"app.kubernetes.io/name": "other"})
    disc = KubernetesDiscoveryConfig(namespace="llm", selector=SELECTOR, port=30000, api_url=api.url)
    model = ModelConfig(name="qwen", engine="external", discovery=disc)
    fleet = Fleet(FleetConfig(models=(model,)))
    await fleet.start(wait=False)
    watcher = None
    try:
        pool = next(iter(fleet.registry))
        watcher = attach(fleet, pool, disc, api_key="k", sa_dir=sa_dir)

        def urls() -> set[str]:
            return {w.url for w in pool.workers}

        await until(lambda: urls() == {"http://10.1.0.1:30000"})
        await until(lambda: bool(api.watchers))
        api.set_pod("qwen-1", "10.1.0.2", ready=True, labels=LABELS)  # becomes Ready
        await until(lambda: urls() == {"http://10.1.0.1:30000", "http://10.1.0.2:30000"})
        api.set_pod("qwen-0", "10.1.0.1", ready=False, labels=LABELS)  # unready
        await until(lambda: urls() == {"http://10.1.0.2:30000"})
        api.delete_pod("qwen-1")
        await until(lambda: urls() == set())
        assert all(r.get("labelSelector") == SELECTOR for r in api.requests)
        assert any(r.get("watch") == "true" and r.get("resourceVersion") for r in api.requests)
    finally:
        if watcher:
            await watcher.stop()
        await fleet.stop()


async def test_expired_watch_and_dropped_connection_relist(api: FakeKubeAPI, sa_dir: Path) -> None:
    added: list[str] = []
    removed: list[str] = []

    async def add(e: Endpoint) -> None:
        added.append(e.url)

    async def remove(e: Endpoint) -> None:
        removed.append(e.url)

    api.set_pod("a", "10.2.0.1", ready=True, labels=LABELS)
    api.expire_next_watch = True
    cfg = KubernetesDiscoveryConfig(namespace="llm", selector=SELECTOR, api_url=api.url, port=8000)
    watcher = PodWatcher(cfg, on_add=add, on_remove=remove, sa_dir=sa_dir, retry_s=0.05)
    watcher.start()
    try:
        await until(lambda: bool(api.watchers))  # 410 answered, listed again, now watching
        lists = [r for r in api.requests if "watch" not in r]
        assert len(lists) >= 2
        # A pod goes away while the watch is being re-opened and its resourceVersion has
        # expired (410): the relist must notice the removal it never saw as an event.
        api.pods.pop("a")
        api.expire_next_watch = True
        api.drop_watches()
        await until(lambda: removed == ["http://10.2.0.1:8000"])
        assert added == ["http://10.2.0.1:8000"]
    finally:
        await watcher.stop()


async def test_auth_failure_is_reported(api: FakeKubeAPI, tmp_path: Path) -> None:
    async def noop(_: Endpoint) -> None:
        return None

    cfg = KubernetesDiscoveryConfig(namespace="llm", selector=SELECTOR, api_url=api.url)
    watcher = PodWatcher(cfg, on_add=noop, on_remove=noop, sa_dir=tmp_path)  # no token file
    try:
        with pytest.raises(DiscoveryError, match="401"):
            await watcher.list_pods()
    finally:
        await watcher.stop()


def test_in_cluster_address_and_missing_config() -> None:
    async def noop(_: Endpoint) -> None:
        return None

    cfg = KubernetesDiscoveryConfig(selector="a=b")
    w = PodWatcher(cfg, on_add=noop, on_remove=noop, env={"KUBERNETES_SERVICE_HOST": "10.96.0.1",
                                                             "KUBERNETES_SERVICE_PORT": "443"})
    assert w.api_url == "https://10.96.0.1:443"
    with pytest.raises(DiscoveryError, match="api_url"):
        PodWatcher(cfg, on_add=noop, on_remove=noop, env={})


def test_pod_url_readiness_rules() -> None:
    ready = pod("p", "fd00::5", ready=True, labels={}, rv=1)
    assert pod_url(ready, 30000) == "http://[fd00::5]:30000"
    terminating = {**ready, "metadata": {**ready["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert pod_url(terminating, 30000) is None
    assert pod_url(pod("p", "10.0.0.1", ready=False, labels={}, rv=1), 30000) is None


def test_bootstrap_port_from_the_pod_annotation() -> None:
    cfg = KubernetesDiscoveryConfig(selector="a=b", port=30000, bootstrap_port=8998)
    plain = pod("p", "10.0.0.1", ready=True, labels={}, rv=1)
    assert pod_endpoint(plain, cfg) == Endpoint("http://10.0.0.1:30000", 8998)  # the config's default
    ours = pod("p", "10.0.0.1", ready=True, labels={}, rv=1, annotations={"sglfleet.io/bootstrap-port": "9100"})
    assert pod_endpoint(ours, cfg) == Endpoint("http://10.0.0.1:30000", 9100)
    sglang = pod("p", "10.0.0.1", ready=True, labels={}, rv=1, annotations={"sglang.ai/bootstrap-port": "9200"})
    assert pod_endpoint(sglang, cfg) == Endpoint("http://10.0.0.1:30000", 9200)  # SGLang router's key too
    bad = pod("p", "10.0.0.1", ready=True, labels={}, rv=1, annotations={"sglfleet.io/bootstrap-port": "http"})
    assert pod_endpoint(bad, cfg) == Endpoint("http://10.0.0.1:30000", 8998)
    unready = pod("p", "10.0.0.1", ready=False, labels={}, rv=1, annotations={"sglfleet.io/bootstrap-port": "1"})
    assert pod_endpoint(unready, cfg) is None


def test_a_worker_group_has_urls_or_discovery() -> None:
    from pydantic import ValidationError

    from sglfleet.config import WorkerGroupConfig

    disc = KubernetesDiscoveryConfig(selector="sglfleet.io/role=prefill")
    assert WorkerGroupConfig(discovery=disc).urls == ()
    with pytest.raises(ValidationError, match="either urls or discovery"):
        WorkerGroupConfig(urls=("http://127.0.0.1:1",), discovery=disc)
    with pytest.raises(ValidationError, match="either urls or discovery"):
        WorkerGroupConfig()
