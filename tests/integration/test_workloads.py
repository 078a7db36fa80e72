"""Deployments, ReplicaSets and Services on localcluster with real pods, through the service proxy."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcluster.settings import PROJECT_IMAGE
from tests.integration.conftest import LocalCluster, eventually

NS = "bookstore"
SERVER = Path(__file__).parent / "podprograms" / "graceful_server.py"


def deployment(name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": PROJECT_IMAGE,
                            "command": ["python", str(SERVER)],
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                        }
                    ]
                },
            },
        },
    }


def service(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]},
    }


@pytest.fixture(scope="module")
def apis(cluster: LocalCluster):
    with cluster.api_client() as api_client:
        yield client.AppsV1Api(api_client), client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def proxied(cluster: LocalCluster):
    proxy = json.loads((cluster.home / "localcluster.json").read_text())["proxy"]
    with httpx.Client(proxy=proxy, trust_env=False, timeout=10) as http:
        yield http


def ready_pods(core: client.CoreV1Api, app: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(NS, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if not p.metadata.deletion_timestamp
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]


def rollout(cluster: LocalCluster, name: str) -> None:
    cluster.kubectl("rollout", "status", f"deployment/{name}", "--timeout=60s", timeout=90)


def test_three_replicas_get_distinct_ips_and_the_service_balances(cluster: LocalCluster, apis, proxied) -> None:
    apps, core = apis
    apps.create_namespaced_deployment(NS, deployment("shop", 3))
    core.create_namespaced_service(NS, service("shop"))
    rollout(cluster, "shop")
    pods = ready_pods(core, "shop")
    assert len(pods) == 3 and len({p.status.pod_ip for p in pods}) == 3
    assert all(p.status.pod_ip.startswith("127.") and p.status.pod_ip != "127.0.0.1" for p in pods)
    eventually(lambda: len(core.read_namespaced_endpoints("shop", NS).subsets[0].addresses) == 3, "3 endpoints")
    answers = Counter(proxied.get("http://shop/").text for _ in range(60))
    assert set(answers) == {p.metadata.name for p in pods}
    assert proxied.get("http://shop.bookstore.svc.cluster.local/").text in answers
    deployment_status = apps.read_namespaced_deployment("shop", NS).status
    assert deployment_status.ready_replicas == 3 and deployment_status.observed_generation == 1
    assert {c.type: c.status for c in deployment_status.conditions} == {"Available": "True", "Progressing": "True"}


def test_scale_three_one_zero_two(cluster: LocalCluster, apis) -> None:
    _apps, core = apis
    for replicas in (1, 0, 2):
        cluster.kubectl("scale", "deployment/shop", f"--replicas={replicas}")
        rollout(cluster, "shop")
        eventually(
            lambda replicas=replicas: (
                len([p for p in core.list_namespaced_pod(NS, label_selector="app=shop").items]) == replicas
            ),
            f"exactly {replicas} pods",
        )


def test_rolling_update_loses_no_request(cluster: LocalCluster, apis, proxied) -> None:
    _apps, core = apis
    before = {p.metadata.name for p in ready_pods(core, "shop")}
    results: Counter[str] = Counter()
    served_by: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        # Bounded: at most 5000 requests, and it stops when the rollout is over.
        for _ in range(5000):
            if stop.is_set():
                return
            try:
                answer = proxied.get("http://shop/")
                results[str(answer.status_code)] += 1
                served_by.add(answer.text)
            except httpx.HTTPError as error:
                results[type(error).__name__] += 1

    loop = threading.Thread(target=load)
    loop.start()
    try:
        cluster.kubectl("rollout", "restart", "deployment/shop")
        rollout(cluster, "shop")
    finally:
        stop.set()
        loop.join(30)
    after = {p.metadata.name for p in ready_pods(core, "shop")}
    assert not before & after, "the rollout replaced every pod"
    assert results["200"] > 20 and set(results) == {"200"}, results
    assert served_by & after, "requests reached the new pods during the loop"


def test_rollout_history_and_undo(cluster: LocalCluster, apis) -> None:
    apps, _core = apis
    history = cluster.kubectl("rollout", "history", "deployment/shop").stdout
    assert "1 " in history and "2 " in history
    restarted = apps.read_namespaced_deployment("shop", NS).spec.template.metadata.annotations
    assert "kubectl.kubernetes.io/restartedAt" in restarted
    cluster.kubectl("rollout", "undo", "deployment/shop")
    rollout(cluster, "shop")
    template = apps.read_namespaced_deployment("shop", NS).spec.template
    assert not (template.metadata.annotations or {}).get("kubectl.kubernetes.io/restartedAt")
    replica_sets = apps.list_namespaced_replica_set(NS, label_selector="app=shop").items
    revisions = {rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs.spec.replicas for rs in replica_sets}
    assert revisions == {"2": 0, "3": 2}


def test_deleting_a_deployment_collects_its_replica_sets_and_pods(cluster: LocalCluster, apis) -> None:
    apps, core = apis
    apps.delete_namespaced_deployment("shop", NS)
    eventually(
        lambda: not apps.list_namespaced_replica_set(NS, label_selector="app=shop").items,
        "the replica sets to be collected",
    )
    eventually(lambda: not core.list_namespaced_pod(NS, label_selector="app=shop").items, "the pods to be collected")
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("shop", NS)


def test_recreate_strategy_stops_old_pods_first(cluster: LocalCluster, apis) -> None:
    apps, core = apis
    body = deployment("batch", 2)
    body["spec"]["strategy"] = {"type": "Recreate"}
    apps.create_namespaced_deployment(NS, body)
    rollout(cluster, "batch")
    old = {p.metadata.name for p in ready_pods(core, "batch")}
    cluster.kubectl("set", "env", "deployment/batch", "VERSION=2")
    rollout(cluster, "batch")
    new = ready_pods(core, "batch")
    assert len(new) == 2 and not old & {p.metadata.name for p in new}
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=batch").items
    assert any(e.reason == "ScalingReplicaSet" and "to 0" in e.message for e in events)


def test_kubectl_get_pods_watch_follows_a_scale_up(cluster: LocalCluster, apis) -> None:
    watcher = cluster.kubectl_streaming("get", "pods", "-l", "app=batch", "-w")
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline()
        assert header.split()[:3] == ["NAME", "READY", "STATUS"]
        cluster.kubectl("scale", "deployment/batch", "--replicas=3")
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum("Running" in line and "1/1" in line for line in lines) < 3:
            lines.append(watcher.stdout.readline())
    finally:
        watcher.kill()
        watcher.communicate()
    running = {line.split()[0] for line in lines if "Running" in line and "1/1" in line}
    assert len(running) == 3, lines
