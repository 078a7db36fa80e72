"""Mesh routing decisions on a real store: sidecar callers, subsets, missing clusters, gateway, RBAC."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from localcluster.api.cluster import Cluster
from localcluster.controllers.endpoints import EndpointsController
from localcluster.network import Caller, Destination, ProxyError, Route, RouteRequest
from localcluster.network.mesh.injection import SidecarInjector
from localcluster.network.mesh.resolver import MeshResolver

from .conftest import NAMESPACE, create_pod, create_service

pytestmark = pytest.mark.anyio

FRONT_IP = "127.10.0.2"
V1_IP, V2_IP = "127.10.0.3", "127.10.0.4"


def create(cluster: Cluster, group: str, plural: str, body: dict[str, Any], namespace: str = NAMESPACE) -> None:
    resource_type = cluster.registry.get(group, plural)
    cluster.create(resource_type, resource_type.storage_version, namespace, body)


def istio(cluster: Cluster, kind: str, name: str, spec: dict[str, Any], namespace: str = NAMESPACE) -> None:
    group = "security.istio.io" if kind == "AuthorizationPolicy" else "networking.istio.io"
    plural = "authorizationpolicies" if kind == "AuthorizationPolicy" else f"{kind.lower()}s"
    create(cluster, group, plural, {"metadata": {"name": name}, "spec": spec}, namespace)


def label_namespace(cluster: Cluster, labels: dict[str, str]) -> None:
    namespaces = cluster.registry.get("", "namespaces")
    patch = json.dumps({"metadata": {"labels": labels}}).encode()
    cluster.patch(namespaces, "v1", "", NAMESPACE, "application/merge-patch+json", patch)


@pytest.fixture
def mesh(cluster: Cluster) -> MeshResolver:
    """A meshed namespace: `front` (caller) and `reviews` v1 and v2 behind Service `reviews`."""
    cluster.mutating_admission.append(SidecarInjector(cluster.store))
    label_namespace(cluster, {"istio-injection": "enabled"})
    create_pod(cluster, "front", labels={"app": "front"}, ip=FRONT_IP)
    for version, ip in (("v1", V1_IP), ("v2", V2_IP)):
        create_pod(cluster, f"reviews-{version}", labels={"app": "reviews", "version": version}, ip=ip)
    create_service(
        cluster,
        "reviews",
        {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    )
    EndpointsController(cluster).sync(NAMESPACE, "reviews")
    return MeshResolver(cluster.store)


def request(
    host: str = "reviews",
    path: str = "/",
    *,
    headers: dict[str, str] | None = None,
    caller: bool = True,
    client: str = FRONT_IP,
    method: str = "GET",
) -> RouteRequest:
    front = Caller(NAMESPACE, "front", "default", {"app": "front"}, {"sidecar.istio.io/status": "{}"})
    return RouteRequest(
        host=host,
        port=80,
        namespace=NAMESPACE,
        client=client if caller else "127.0.0.1",
        method=method,
        path=path,
        headers=tuple((headers or {}).items()),
        caller=front if caller else None,
    )


async def destination(mesh: MeshResolver, req: RouteRequest) -> Destination:
    route = await mesh.resolve(req)
    assert isinstance(route, Route)
    return await route.choose()


def subsets(cluster: Cluster) -> None:
    istio(
        cluster,
        "DestinationRule",
        "reviews",
        {
            "host": "reviews",
            "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
        },
    )


def route_everything_to(cluster: Cluster, subset: str) -> None:
    """VirtualService `reviews`: every request to subset `subset`."""
    istio(
        cluster,
        "VirtualService",
        "reviews",
        {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": subset}}]}]},
    )


async def refusal_choosing(mesh: MeshResolver) -> tuple[int, str | None, str]:
    """The status, body and Envoy response flag with which the sidecar refuses the default request's destination."""
    route = await mesh.resolve(request())
    assert route is not None
    with pytest.raises(ProxyError) as failure:
        await route.choose()
    return failure.value.status, failure.value.text, failure.value.flag


async def test_without_a_virtual_service_a_sidecar_balances_over_the_service(
    cluster: Cluster, mesh: MeshResolver
) -> None:
    seen = Counter([(await destination(mesh, request())).host for _ in range(40)])
    assert set(seen) == {V1_IP, V2_IP}
    route = await mesh.resolve(request())
    assert route is not None and route.policy.retries is not None and route.policy.retries.attempts == 2
    assert route.policy.retries.retriable_status_codes == frozenset()  # Istio's default retries no 503


async def test_a_virtual_service_sends_everything_to_one_subset(cluster: Cluster, mesh: MeshResolver) -> None:
    subsets(cluster)
    route_everything_to(cluster, "v2")
    hosts = {(await destination(mesh, request())).host for _ in range(20)}
    assert hosts == {V2_IP}
    route = await mesh.resolve(request())
    assert route is not None and route.labels["destination_service"] == f"reviews.{NAMESPACE}.svc.cluster.local"


async def test_a_caller_without_sidecar_gets_plain_service_routing(cluster: Cluster, mesh: MeshResolver) -> None:
    subsets(cluster)
    route_everything_to(cluster, "v2")
    assert await mesh.resolve(request(caller=False)) is None  # plain Service routing: VirtualServices apply
    # on the client's side, which has no sidecar


async def test_an_undefined_subset_is_a_missing_cluster(cluster: Cluster, mesh: MeshResolver) -> None:
    route_everything_to(cluster, "v3")
    assert await refusal_choosing(mesh) == (503, "", "NC")


async def test_a_subset_without_endpoints_has_no_healthy_upstream(cluster: Cluster, mesh: MeshResolver) -> None:
    istio(
        cluster,
        "DestinationRule",
        "reviews",
        {"host": "reviews", "subsets": [{"name": "v9", "labels": {"version": "v9"}}]},
    )
    route_everything_to(cluster, "v9")
    assert await refusal_choosing(mesh) == (503, "no healthy upstream", "UH")


async def test_no_matching_rule_is_404_route_not_found(cluster: Cluster, mesh: MeshResolver) -> None:
    istio(
        cluster,
        "VirtualService",
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [{"match": [{"uri": {"prefix": "/api"}}], "route": [{"destination": {"host": "reviews"}}]}],
        },
    )
    with pytest.raises(ProxyError) as failure:
        await mesh.resolve(request(path="/health"))
    assert (failure.value.status, failure.value.flag) == (404, "NR")


async def test_policy_of_a_rule(cluster: Cluster, mesh: MeshResolver) -> None:
    rule = {
        "match": [{"uri": {"prefix": "/old"}}],
        "rewrite": {"uri": "/new"},
        "timeout": "2s",
        "retries": {"attempts": 3, "perTryTimeout": "500ms", "retryOn": "gateway-error,503"},
        "fault": {"delay": {"fixedDelay": "1s", "percentage": {"value": 50}}, "abort": {"httpStatus": 500}},
        "headers": {"request": {"set": {"x-a": "1"}}, "response": {"remove": ["x-b"]}},
        "route": [{"destination": {"host": "reviews"}, "headers": {"request": {"add": {"x-c": "2"}}}}],
        "mirror": {"host": "reviews"},
        "mirrorPercentage": {"value": 25},
    }
    istio(cluster, "VirtualService", "reviews", {"hosts": ["reviews"], "http": [rule]})
    route = await mesh.resolve(request(path="/old/x?q=1"))
    assert route is not None
    policy = route.policy
    assert policy.path == "/new/x?q=1"
    assert policy.timeout == 2.0
    assert policy.retries is not None
    assert (policy.retries.attempts, policy.retries.per_try_timeout) == (3, 0.5)
    assert policy.retries.retry_on == {"gateway-error", "retriable-status-codes"}
    assert policy.retries.retriable_status_codes == {503}
    assert policy.fault is not None
    assert (policy.fault.delay, policy.fault.delay_percent, policy.fault.abort_status, policy.fault.abort_percent) == (
        1.0,
        50.0,
        500,
        0.0,
    )
    assert policy.request_headers.set == (("x-a", "1"),) and policy.request_headers.add == (("x-c", "2"),)
    assert policy.response_headers.remove == ("x-b",)
    assert policy.mirror is not None and policy.mirror_percent == 25.0
    assert policy.envoy_answers


async def test_the_ingress_gateway_routes_by_its_virtual_services(cluster: Cluster, mesh: MeshResolver) -> None:
    gateway_host = "istio-ingressgateway.istio-system"
    with pytest.raises(ProxyError, match="no Gateway selects it"):
        await mesh.resolve(request(gateway_host, caller=False))
    subsets(cluster)
    istio(
        cluster,
        "Gateway",
        "shop",
        {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    )
    istio(
        cluster,
        "VirtualService",
        "front",
        {
            "hosts": ["*"],
            "gateways": ["shop"],
            "http": [
                {
                    "match": [{"headers": {"end-user": {"exact": "tester"}}}],
                    "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
                },
                {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
            ],
        },
    )
    assert (await destination(mesh, request(gateway_host, caller=False))).host == V1_IP
    tester = request(gateway_host, caller=False, headers={"end-user": "tester"})
    chosen = await destination(mesh, tester)
    assert chosen.host == V2_IP
    route = await mesh.resolve(tester)
    assert route is not None and route.labels["source_workload"] == "istio-ingressgateway"


async def test_authorization_at_the_destination(cluster: Cluster, mesh: MeshResolver) -> None:
    istio(
        cluster,
        "AuthorizationPolicy",
        "reviews",
        {
            "selector": {"matchLabels": {"app": "reviews"}},
            "rules": [
                {
                    "from": [{"source": {"principals": [f"cluster.local/ns/{NAMESPACE}/sa/default"]}}],
                    "to": [{"operation": {"methods": ["GET"]}}],
                }
            ],
        },
    )
    allowed = await destination(mesh, request())
    mesh.inbound(request(), allowed)
    with pytest.raises(ProxyError) as denied:
        mesh.inbound(request(method="POST"), allowed)
    assert (denied.value.status, denied.value.text, denied.value.flag) == (403, "RBAC: access denied", "RBAC")
    with pytest.raises(ProxyError) as plain_text:  # no sidecar, no identity: the principal rule cannot match
        mesh.inbound(request(caller=False), allowed)
    assert plain_text.value.status == 403
    gateway = request("istio-ingressgateway.istio-system", caller=False)
    with pytest.raises(ProxyError):  # through the gateway the peer is the gateway's identity, not `default`
        mesh.inbound(gateway, allowed)


async def test_stats_are_served_at_a_sidecars_status_port(cluster: Cluster, mesh: MeshResolver) -> None:
    stats = RouteRequest(
        host=V1_IP, port=15020, namespace=NAMESPACE, client="127.0.0.1", method="GET", path="/stats/prometheus"
    )
    route = await mesh.resolve(stats)
    assert route is not None and route.policy.direct is not None
    assert route.policy.direct.status == 200


async def test_services_that_select_no_pods_are_left_to_the_next_resolvers(
    cluster: Cluster, mesh: MeshResolver
) -> None:
    placeholder = {"type": "ExternalName", "externalName": "knative-local-gateway.knative-serving.svc.cluster.local"}
    create_service(cluster, "hello", placeholder)
    assert await mesh.resolve(request("hello")) is None  # a Knative route's host: the Knative resolver's
