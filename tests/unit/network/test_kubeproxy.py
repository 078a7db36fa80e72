"""The Service rules pods follow (cluster DNS and kube-proxy's part), computed from the real store."""

from __future__ import annotations

import json
from pathlib import Path

from localcluster.api.cluster import Cluster
from localcluster.controllers.endpoints import EndpointsController
from localcluster.knative.keys import REVISION_LABEL, ROUTE_LABEL
from localcluster.network.kubeproxy import FORMAT, ServiceRules, compute_rules
from localcluster.network.mesh.injection import SIDECAR_STATUS

from .conftest import NAMESPACE, create_pod, create_service

PROXY = ("127.0.0.1", 3128)
WEB = {"app": "web"}


def rules_with(cluster: Cluster) -> dict:
    EndpointsController(cluster).reconcile([])
    return compute_rules(cluster.store, PROXY)


def annotate(cluster: Cluster, name: str, annotations: dict[str, str]) -> None:
    pods = cluster.registry.get("", "pods")
    pod = cluster.get(pods, NAMESPACE, name)
    pod["metadata"]["annotations"] = annotations
    cluster.replace(pods, "v1", NAMESPACE, name, pod)


def test_a_plain_service_routes_straight_to_its_ready_endpoints(cluster: Cluster) -> None:
    service = create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80, "targetPort": 8080}]})
    create_pod(cluster, "web-a", labels=WEB, ip="127.0.1.2")
    create_pod(cluster, "web-b", labels=WEB, ip="127.0.1.3", ready=False)
    rules = rules_with(cluster)
    cluster_ip = service["spec"]["clusterIP"]
    assert rules["format"] == FORMAT and rules["proxy"] == list(PROXY)
    assert rules["services"] == {f"{NAMESPACE}/web": cluster_ip}
    assert rules["routes"] == {cluster_ip: {"80": [["127.0.1.2", 8080]]}}
    assert rules["pods"] == {f"{NAMESPACE}/web-a": False, f"{NAMESPACE}/web-b": False}


def test_services_that_need_the_proxy_have_a_name_but_no_route(cluster: Cluster) -> None:
    for name, labels in (("mesh", {"app": "mesh"}), ("revision", {"app": "revision", REVISION_LABEL: "r-00001"})):
        create_service(cluster, name, {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]})
        create_pod(cluster, f"{name}-a", labels=labels, ip="127.0.2.2" if name == "mesh" else "127.0.2.3")
    annotate(cluster, "mesh-a", {SIDECAR_STATUS: "{}"})
    create_service(cluster, "empty", {"selector": {"app": "nobody"}, "ports": [{"port": 80}]})
    placeholder = create_service(cluster, "route", {"ports": [{"port": 80}]})
    placeholder["metadata"]["labels"] = {ROUTE_LABEL: "route"}
    cluster.replace(cluster.registry.get("", "services"), "v1", NAMESPACE, "route", placeholder)
    rules = rules_with(cluster)
    assert set(rules["services"]) == {f"{NAMESPACE}/{name}" for name in ("mesh", "revision", "empty", "route")}
    assert rules["routes"] == {}
    assert rules["pods"][f"{NAMESPACE}/mesh-a"] is True, "a pod with a sidecar sends everything to the proxy"


def test_headless_services_have_no_cluster_ip_to_resolve(cluster: Cluster) -> None:
    create_service(cluster, "db", {"clusterIP": "None", "selector": WEB, "ports": [{"port": 5432}]})
    assert rules_with(cluster)["services"] == {}


def test_the_file_is_replaced_only_when_the_rules_change(cluster: Cluster, tmp_path: Path) -> None:
    writer = ServiceRules(cluster.store, tmp_path / "network" / "service-rules.json", PROXY)
    writer.write()
    first = writer.path.stat()
    writer.write()
    assert writer.path.stat().st_ino == first.st_ino, "nothing changed, nothing written"
    create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80}]})
    writer.write()
    assert writer.path.stat().st_ino != first.st_ino
    assert f"{NAMESPACE}/web" in json.loads(writer.path.read_text())["services"]
    assert [p.name for p in writer.path.parent.iterdir()] == ["service-rules.json"], "no temporary file left"
