"""Cluster IPs and node ports as the Service registry allocates them: on create, kept on update, checked when asked."""

from __future__ import annotations

import copy
import ipaddress

import pytest

from localcluster.api.errors import Invalid
from localcluster.api.service_network import KUBERNETES_SERVICE_IP, NODE_PORTS, SERVICE_CIDR, allocate


def service(name: str, **spec: object) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"ports": [{"port": 80}], **spec}}


def allocated(others: list[dict], svc: dict, old: dict | None = None) -> dict:
    svc = copy.deepcopy(svc)
    allocate(others, svc, old)
    return svc


def test_a_new_service_gets_a_free_address_in_the_range_never_the_kubernetes_one() -> None:
    kubernetes = allocated([], service("kubernetes", clusterIP=KUBERNETES_SERVICE_IP))
    seen = set()
    for index in range(50):
        ip = allocated([kubernetes], service(f"s{index}"))["spec"]["clusterIP"]
        assert ipaddress.IPv4Address(ip) in SERVICE_CIDR and ip != KUBERNETES_SERVICE_IP
        seen.add(ip)
    assert len(seen) > 1  # random, as upstream's allocator


def test_an_update_keeps_the_address_and_node_ports_it_leaves_out() -> None:
    created = allocated([], service("web", type="NodePort"))
    updated = allocated([created], service("web", type="NodePort"), created)
    assert updated["spec"]["clusterIP"] == created["spec"]["clusterIP"]
    assert updated["spec"]["ports"][0]["nodePort"] == created["spec"]["ports"][0]["nodePort"]
    assert updated["spec"]["ports"][0]["nodePort"] in NODE_PORTS


def test_type_changes_allocate_and_release() -> None:
    plain = allocated([], service("web"))
    assert "nodePort" not in plain["spec"]["ports"][0]
    node_port = allocated([plain], service("web", type="NodePort"), plain)
    assert node_port["spec"]["ports"][0]["nodePort"] in NODE_PORTS
    back = allocated([node_port], service("web"), node_port)
    assert "nodePort" not in back["spec"]["ports"][0]
    external = allocated(
        [back],
        {
            **service("web", type="ExternalName", externalName="x.example"),
            "spec": {"type": "ExternalName", "externalName": "x.example", "clusterIP": back["spec"]["clusterIP"]},
        },
        back,
    )
    assert "clusterIP" not in external["spec"] and "clusterIPs" not in external["spec"]


def test_headless_stays_none_and_load_balancers_may_skip_node_ports() -> None:
    headless = allocated([], service("db", clusterIP="None"))
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    balancer = allocated([], service("lb", type="LoadBalancer", allocateLoadBalancerNodePorts=False))
    assert "nodePort" not in balancer["spec"]["ports"][0]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"clusterIP": "10.0.0.1"}, "spec.clusterIPs", "provided IP is not in the valid range"),
        ({"clusterIP": "127.96.0.5"}, "spec.clusterIPs", "provided IP is already allocated"),
        ({"clusterIP": "127.96.0.6", "clusterIPs": ["127.96.0.7"]}, "spec.clusterIPs", "must match"),
        ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}, "spec.ports[0].nodePort", "valid range"),
        (
            {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30007}]},
            "spec.ports[0].nodePort",
            "already allocated",
        ),
        (
            {
                "type": "NodePort",
                "ports": [{"name": "a", "port": 80, "nodePort": 30008}, {"name": "b", "port": 81, "nodePort": 30008}],
            },
            "spec.ports[1].nodePort",
            "already allocated",
        ),
    ],
)
def test_what_is_asked_for_is_checked(spec: dict, field: str, message: str) -> None:
    other = allocated(
        [], service("other", clusterIP="127.96.0.5", type="NodePort", ports=[{"port": 1, "nodePort": 30007}])
    )
    with pytest.raises(Invalid) as refused:
        allocated([other], service("mine", **spec))
    [cause] = refused.value.causes
    assert cause.field == field and message in cause.message
