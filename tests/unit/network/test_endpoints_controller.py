"""The endpoints and endpointslice controllers, driven through the real API pipeline and store."""

from __future__ import annotations

from typing import Any

from localcluster.api.cluster import Cluster
from localcluster.controllers.endpoints import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    EndpointsController,
    find_port,
)

from .conftest import NAMESPACE, create_pod, create_service, set_pod_status

WEB = {"app": "web"}


def endpoints_of(cluster: Cluster, name: str) -> dict[str, Any] | None:
    return cluster.find(cluster.registry.get("", "endpoints"), NAMESPACE, name)


def slices_of(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    entries, _ = cluster.store.list("discovery.k8s.io/endpointslices", NAMESPACE)
    return [e.obj for e in entries if e.obj["metadata"]["labels"].get(SERVICE_NAME_LABEL) == name]


def test_ready_and_not_ready_pods_become_addresses_and_not_ready_addresses(cluster: Cluster) -> None:
    create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80, "targetPort": 8080}]})
    ready = create_pod(cluster, "web-a", labels=WEB, ip="127.0.1.2")
    create_pod(cluster, "web-b", labels=WEB, ip="127.0.1.3", ready=False)
    create_pod(cluster, "other", labels={"app": "other"}, ip="127.0.1.4")
    create_pod(cluster, "no-ip-yet", labels=WEB)
    EndpointsController(cluster).reconcile([])

    endpoints = endpoints_of(cluster, "web")
    assert endpoints is not None
    (subset,) = endpoints["subsets"]
    assert subset["addresses"] == [
        {
            "ip": "127.0.1.2",
            "nodeName": "local",
            "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": "web-a", "uid": ready["metadata"]["uid"]},
        }
    ]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["127.0.1.3"]
    assert subset["ports"] == [{"port": 8080, "protocol": "TCP"}]


def test_named_target_port_resolves_per_pod_from_container_ports(cluster: Cluster) -> None:
    create_service(cluster, "web", {"selector": WEB, "ports": [{"name": "http", "port": 80, "targetPort": "api"}]})
    create_pod(cluster, "old", labels=WEB, ip="127.0.1.2", ports=[{"name": "api", "containerPort": 8080}])
    create_pod(cluster, "new", labels=WEB, ip="127.0.1.3", ports=[{"name": "api", "containerPort": 9090}])
    create_pod(cluster, "unnamed", labels=WEB, ip="127.0.1.4", ports=[{"containerPort": 8080}])
    EndpointsController(cluster).reconcile([])

    subsets = endpoints_of(cluster, "web")["subsets"]  # type: ignore[index]
    by_port = {s["ports"][0]["port"]: [a["ip"] for a in s["addresses"]] for s in subsets}
    assert by_port == {8080: ["127.0.1.2"], 9090: ["127.0.1.3"]}
    assert all(s["ports"][0]["name"] == "http" for s in subsets)


def test_find_port_takes_numbers_and_names_and_skips_unknown_names() -> None:
    pod = {"spec": {"containers": [{"ports": [{"name": "api", "containerPort": 7000, "protocol": "TCP"}]}]}}
    assert find_port(pod, {"port": 80, "targetPort": 8080}) == 8080
    assert find_port(pod, {"port": 80, "targetPort": "api"}) == 7000
    assert find_port(pod, {"port": 80, "targetPort": "api", "protocol": "UDP"}) is None
    assert find_port(pod, {"port": 80, "targetPort": "metrics"}) is None


def test_endpoint_slice_has_conditions_label_and_owner(cluster: Cluster) -> None:
    service = create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80, "targetPort": 8080}]})
    create_pod(cluster, "web-a", labels=WEB, ip="127.0.1.2")
    create_pod(cluster, "web-b", labels=WEB, ip="127.0.1.3", ready=False)
    EndpointsController(cluster).reconcile([])

    (endpoint_slice,) = slices_of(cluster, "web")
    assert endpoint_slice["metadata"]["name"].startswith("web-")
    assert endpoint_slice["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
    assert endpoint_slice["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": "web",
            "uid": service["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert endpoint_slice["addressType"] == "IPv4"
    assert endpoint_slice["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
    conditions = {e["addresses"][0]: e["conditions"] for e in endpoint_slice["endpoints"]}
    assert conditions == {
        "127.0.1.2": {"ready": True, "serving": True, "terminating": False},
        "127.0.1.3": {"ready": False, "serving": False, "terminating": False},
    }


def test_terminating_pod_leaves_endpoints_but_stays_in_slice_as_terminating(cluster: Cluster) -> None:
    create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80, "targetPort": 8080}]})
    create_pod(cluster, "web-a", labels=WEB, ip="127.0.1.2")
    controller = EndpointsController(cluster)
    controller.reconcile([])
    cluster.delete(cluster.registry.get("", "pods"), NAMESPACE, "web-a")  # graceful: the pod has a node
    controller.sync(NAMESPACE, "web")

    assert "subsets" not in endpoints_of(cluster, "web")  # type: ignore[operator]
    (endpoint,) = slices_of(cluster, "web")[0]["endpoints"]
    assert endpoint["conditions"] == {"ready": False, "serving": True, "terminating": True}


def test_publish_not_ready_addresses_lists_every_pod_as_ready(cluster: Cluster) -> None:
    spec = {"selector": WEB, "ports": [{"port": 80}], "publishNotReadyAddresses": True}
    create_service(cluster, "web", spec)
    create_pod(cluster, "web-a", labels=WEB, ip="127.0.1.2", ready=False)
    EndpointsController(cluster).reconcile([])

    (subset,) = endpoints_of(cluster, "web")["subsets"]  # type: ignore[index]
    assert [a["ip"] for a in subset["addresses"]] == ["127.0.1.2"]
    assert slices_of(cluster, "web")[0]["endpoints"][0]["conditions"]["ready"] is True


def test_finished_pods_are_left_out(cluster: Cluster) -> None:
    create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80}]})
    create_pod(cluster, "done", labels=WEB, ip="127.0.1.2", phase="Succeeded")
    EndpointsController(cluster).reconcile([])
    assert "subsets" not in endpoints_of(cluster, "web")  # type: ignore[operator]
    (placeholder,) = slices_of(cluster, "web")
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []


def test_readiness_changes_move_the_address_between_lists(cluster: Cluster) -> None:
    create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80}]})
    pod = create_pod(cluster, "web-a", labels=WEB, ip="127.0.1.2", ready=False)
    controller = EndpointsController(cluster)
    watch = cluster.store.watch(None, None, cluster.store.resource_version)
    controller.reconcile([])
    assert "addresses" not in endpoints_of(cluster, "web")["subsets"][0]  # type: ignore[index]

    set_pod_status(cluster, pod, ip="127.0.1.2", ready=True)
    events = [watch.queue.get_nowait() for _ in range(watch.queue.qsize())]
    controller.reconcile(events)
    (subset,) = endpoints_of(cluster, "web")["subsets"]  # type: ignore[index]
    assert [a["ip"] for a in subset["addresses"]] == ["127.0.1.2"] and "notReadyAddresses" not in subset
    assert slices_of(cluster, "web")[0]["endpoints"][0]["conditions"]["ready"] is True


def test_unchanged_state_writes_nothing(cluster: Cluster) -> None:
    create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80}]})
    create_pod(cluster, "web-a", labels=WEB, ip="127.0.1.2")
    controller = EndpointsController(cluster)
    controller.reconcile([])
    version = cluster.store.resource_version
    controller.reconcile([])
    assert cluster.store.resource_version == version


def test_service_without_selector_keeps_the_users_endpoints(cluster: Cluster) -> None:
    create_service(cluster, "external", {"ports": [{"port": 80}]})
    endpoints = cluster.registry.get("", "endpoints")
    subsets = [{"addresses": [{"ip": "127.0.9.9"}], "ports": [{"port": 80}]}]
    mine = {"metadata": {"name": "external"}, "subsets": subsets}
    cluster.create(endpoints, "v1", NAMESPACE, mine)
    EndpointsController(cluster).reconcile([])
    assert endpoints_of(cluster, "external")["subsets"][0]["addresses"] == [{"ip": "127.0.9.9"}]  # type: ignore[index]
    assert slices_of(cluster, "external") == []


def test_deleted_service_takes_its_endpoints_and_slices_along(cluster: Cluster) -> None:
    create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80}]})
    create_pod(cluster, "web-a", labels=WEB, ip="127.0.1.2")
    controller = EndpointsController(cluster)
    controller.reconcile([])
    cluster.delete(cluster.registry.get("", "services"), NAMESPACE, "web")
    controller.sync(NAMESPACE, "web")
    assert endpoints_of(cluster, "web") is None
    assert slices_of(cluster, "web") == []


def test_slice_is_updated_in_place_when_pods_change(cluster: Cluster) -> None:
    create_service(cluster, "web", {"selector": WEB, "ports": [{"port": 80}]})
    create_pod(cluster, "web-a", labels=WEB, ip="127.0.1.2")
    controller = EndpointsController(cluster)
    controller.reconcile([])
    (before,) = slices_of(cluster, "web")
    create_pod(cluster, "web-b", labels=WEB, ip="127.0.1.3")
    controller.sync(NAMESPACE, "web")
    (after,) = slices_of(cluster, "web")
    assert after["metadata"]["name"] == before["metadata"]["name"]
    assert [e["addresses"] for e in after["endpoints"]] == [["127.0.1.2"], ["127.0.1.3"]]
