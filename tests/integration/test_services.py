"""Services as upstream allocates them: cluster IPs the proxy answers on, node ports, and `default/kubernetes`."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

import labkit
from labkit.connection import Connection
from tests.integration.conftest import LocalCluster, poll_until
from tests.integration.test_network import NAMESPACE, PodServer, create_service, json_of, pods

__all__ = ["pods"]  # a fixture shared with test_network (conn comes from conftest)

SERVICE_CIDR = ipaddress.IPv4Network("127.96.0.0/12")


def service_body(name: str, **spec: object) -> client.V1Service:
    ports = spec.pop("ports", [client.V1ServicePort(port=80, target_port=8080)])
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"test": "network"}),
        spec=client.V1ServiceSpec(ports=ports, **spec),
    )


def test_a_service_gets_a_cluster_ip_the_proxy_answers_on(conn: Connection, pods: Callable[..., PodServer]) -> None:
    server = pods("ledger", "127.0.6.1")
    create_service(conn, "ledger", port=8080)
    service = conn.core.read_namespaced_service("ledger", NAMESPACE)
    ip = service.spec.cluster_ip
    assert ipaddress.IPv4Address(ip) in SERVICE_CIDR and service.spec.cluster_ips == [ip]
    assert service.status.load_balancer is not None
    poll_until(lambda: conn.http.get(f"http://{ip}:8080/").status_code, lambda s: s == 200, "the cluster IP to answer")
    assert json_of(conn.http.get(f"http://{ip}:8080/"))["server"] == server.name
    unknown = conn.http.get(f"http://{SERVICE_CIDR.broadcast_address - 1}:80/")
    assert unknown.status_code == 503 and "no Service has the cluster IP" in unknown.text
    view = str(labkit.snapshot(conn))
    assert ip in view


def test_cluster_ips_asked_for_are_checked(conn: Connection) -> None:
    conn.core.create_namespaced_service(NAMESPACE, service_body("first"))
    taken = conn.core.read_namespaced_service("first", NAMESPACE).spec.cluster_ip
    for asked, problem in ((taken, "provided IP is already allocated"), ("10.0.0.10", "not in the valid range")):
        with pytest.raises(ApiException) as refused:
            conn.core.create_namespaced_service(NAMESPACE, service_body("second", cluster_ip=asked))
        assert refused.value.status == 422
        assert problem in json.loads(refused.value.body)["message"]
    in_use = {s.spec.cluster_ip for s in conn.core.list_service_for_all_namespaces().items}
    free = next(str(ip) for ip in SERVICE_CIDR.hosts() if str(ip) not in in_use)
    conn.core.create_namespaced_service(NAMESPACE, service_body("second", cluster_ip=free))
    assert conn.core.read_namespaced_service("second", NAMESPACE).spec.cluster_ip == free


def test_headless_and_external_name_services_have_no_address(conn: Connection) -> None:
    conn.core.create_namespaced_service(NAMESPACE, service_body("headless", cluster_ip="None"))
    headless = conn.core.read_namespaced_service("headless", NAMESPACE)
    assert headless.spec.cluster_ip == "None" and headless.spec.cluster_ips == ["None"]
    conn.core.create_namespaced_service(
        NAMESPACE, service_body("elsewhere", type="ExternalName", external_name="example.com", ports=None)
    )
    assert conn.core.read_namespaced_service("elsewhere", NAMESPACE).spec.cluster_ip is None


def test_node_ports_are_allocated_kept_and_checked(cluster: LocalCluster, conn: Connection) -> None:
    conn.core.create_namespaced_service(NAMESPACE, service_body("exposed", type="NodePort"))
    [port] = conn.core.read_namespaced_service("exposed", NAMESPACE).spec.ports
    assert 30000 <= port.node_port <= 32767
    manifest = (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: exposed\n  labels: {test: network}\n"
        "spec:\n  type: NodePort\n  ports: [{port: 80, targetPort: 9090}]\n"
    )
    cluster.kubectl("apply", "-f", "-", input=manifest)  # an update that leaves nodePort out keeps it
    [kept] = conn.core.read_namespaced_service("exposed", NAMESPACE).spec.ports
    assert kept.node_port == port.node_port and kept.target_port == 9090
    clash = service_body("clash", type="NodePort", ports=[client.V1ServicePort(port=80, node_port=port.node_port)])
    with pytest.raises(ApiException) as refused:
        conn.core.create_namespaced_service(NAMESPACE, clash)
    assert refused.value.status == 422
    assert "spec.ports[0].nodePort" in refused.value.body and "provided port is already allocated" in refused.value.body
    conn.core.create_namespaced_service(NAMESPACE, service_body("balancer", type="LoadBalancer"))
    listed = cluster.kubectl("get", "service", "balancer").stdout.splitlines()[1].split()
    assert listed[1] == "LoadBalancer" and listed[3] == "<pending>" and ":3" in listed[4]


def test_default_kubernetes_service_points_at_the_api(cluster: LocalCluster, conn: Connection) -> None:
    service = conn.core.read_namespaced_service("kubernetes", "default")
    assert service.spec.cluster_ip == "127.96.0.1"
    assert [(p.name, p.port) for p in service.spec.ports] == [("https", 443)]
    assert service.metadata.labels == {"component": "apiserver", "provider": "kubernetes"}
    api_port = int(conn.core.api_client.configuration.host.rsplit(":", 1)[1])
    endpoints = conn.core.read_namespaced_endpoints("kubernetes", "default")
    [subset] = endpoints.subsets
    assert [(a.ip, p.port) for a in subset.addresses for p in subset.ports] == [("127.0.0.1", api_port)]
