"""istiod's validating webhook: what a real cluster refuses, refused the same way (400, field paths)."""

from __future__ import annotations

from typing import Any

import pytest

from localcluster.api.cluster import Cluster
from localcluster.api.errors import BadRequest
from localcluster.network.mesh import webhook

from .conftest import NAMESPACE


def create(cluster: Cluster, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    group = "security.istio.io" if kind == "AuthorizationPolicy" else "networking.istio.io"
    plural = "authorizationpolicies" if kind == "AuthorizationPolicy" else f"{kind.lower()}s"
    resource_type = cluster.registry.get(group, plural)
    body = {"metadata": {"name": "x"}, "spec": spec}
    return cluster.create(resource_type, resource_type.storage_version, NAMESPACE, body).obj


@pytest.fixture
def istio(cluster: Cluster) -> Cluster:
    cluster.validating_admission.append(webhook.validate)
    return cluster


def refusal(cluster: Cluster, kind: str, spec: dict[str, Any]) -> BadRequest:
    with pytest.raises(BadRequest) as refused:
        create(cluster, kind, spec)
    assert refused.value.message.startswith('admission webhook "validation.istio.io" denied the request')
    return refused.value


@pytest.mark.parametrize(
    ("spec", "path", "reason"),
    [
        ({"http": [{"route": [{"destination": {"host": "r"}}]}]}, "spec.hosts", "at least one host"),
        ({"hosts": ["*"], "http": [{"route": [{"destination": {"host": "r"}}]}]}, "spec.hosts", "mesh gateway"),
        ({"hosts": ["r"], "http": [{"name": "empty"}]}, "spec.http[0]", "route, redirect or direct_response"),
        (
            {"hosts": ["r"], "http": [{"route": [{"destination": {"host": "a"}}, {"destination": {"host": "b"}}]}]},
            "spec.http[0].route",
            "total destination weight = 0",
        ),
        (
            {
                "hosts": ["r"],
                "http": [{"match": [{"uri": {"regex": "/api(?=/v2)"}}], "route": [{"destination": {"host": "r"}}]}],
            },
            "spec.http[0].match[0].uri.regex",
            "RE2",
        ),
        (
            {
                "hosts": ["r"],
                "http": [{"fault": {"abort": {"httpStatus": 700}}, "route": [{"destination": {"host": "r"}}]}],
            },
            "spec.http[0].fault.abort.httpStatus",
            "not in range 200-599",
        ),
    ],
)
def test_virtual_services_istiod_refuses(istio: Cluster, spec: dict[str, Any], path: str, reason: str) -> None:
    refused = refusal(istio, "VirtualService", spec)
    assert [cause.field for cause in refused.causes] == [path]
    assert reason in refused.causes[0].message


def test_a_route_to_an_undefined_subset_is_accepted(istio: Cluster) -> None:
    created = create(
        istio, "VirtualService", {"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r", "subset": "v9"}}]}]}
    )
    assert created["spec"]["hosts"] == ["r"]  # it fails at request time (503), as upstream


def test_destination_rules_gateways_and_policies(istio: Cluster) -> None:
    duplicate = {"host": "r", "subsets": [{"name": "v1", "labels": {}}, {"name": "v1", "labels": {}}]}
    assert "duplicate subset names: v1" in refusal(istio, "DestinationRule", duplicate).message
    hashed = {"host": "r", "trafficPolicy": {"loadBalancer": {"consistentHash": {"useSourceIp": True}}}}
    assert "localcluster cannot apply this" in refusal(istio, "DestinationRule", hashed).message
    assert "at least one server" in refusal(istio, "Gateway", {"selector": {"istio": "ingressgateway"}}).message
    custom = {"action": "CUSTOM", "rules": [{}]}
    assert "`provider.name` must not be empty" in refusal(istio, "AuthorizationPolicy", custom).message
    bad_port = {"rules": [{"to": [{"operation": {"ports": ["http"]}}]}]}
    assert "ports must be numbers" in refusal(istio, "AuthorizationPolicy", bad_port).message
