"""Istio's standard metrics from the proxy's exchanges: one source sample per request, one
destination sample per attempt, with Istio's label names, in Prometheus text."""

from __future__ import annotations

from types import MappingProxyType

from prometheus_client.parser import text_string_to_metric_families

from localcluster.network import Destination, Exchange, RouteRequest
from localcluster.network.mesh.config import MeshPod
from localcluster.network.mesh.telemetry import SOURCE_PROXY, MeshTelemetry
from localcluster.network.routing import Try

STOCK = MeshPod(
    "shop",
    "stock-v1-abc-x",
    "127.9.0.3",
    MappingProxyType({"app": "stock", "version": "v1"}),
    "stock",
    "stock-v1",
    True,
)


def samples(telemetry: MeshTelemetry, proxy: str) -> dict[tuple[str, str, str], float]:
    """istio_requests_total by (reporter, response_code, destination_version)."""
    found = {}
    for family in text_string_to_metric_families(telemetry.render(proxy).decode()):
        for sample in family.samples:
            if sample.name == "istio_requests_total":
                key = (sample.labels["reporter"], sample.labels["response_code"], sample.labels["destination_version"])
                found[key] = sample.value
    return found


def test_a_retried_request_is_one_source_sample_and_one_destination_sample_per_attempt() -> None:
    telemetry = MeshTelemetry({STOCK.ip: STOCK}.get)
    at_stock = Destination(STOCK.ip, 8080, via="shop/stock")
    request = RouteRequest(host="stock", port=80, namespace="shop", client="127.9.0.2", method="GET", path="/")
    labels = {
        SOURCE_PROXY: "shop/front-1",
        "source_workload": "front",
        "destination_service": "stock.shop.svc.cluster.local",
    }
    exchange = Exchange(
        request=request,
        labels=labels,
        destination=at_stock,
        status=200,
        started=0.0,
        duration=0.05,
        attempts=3,
        flags=frozenset(),
        tries=(Try(at_stock, 503, 0.01), Try(at_stock, 503, 0.01), Try(at_stock, 200, 0.01)),
    )
    telemetry(exchange)
    assert samples(telemetry, "shop/front-1") == {("source", "200", "v1"): 1.0}
    assert samples(telemetry, "shop/stock-v1-abc-x") == {
        ("destination", "503", "v1"): 2.0,
        ("destination", "200", "v1"): 1.0,
    }
    text = telemetry.render("shop/stock-v1-abc-x").decode()
    assert 'destination_principal="spiffe://cluster.local/ns/shop/sa/stock"' in text
    assert 'connection_security_policy="mutual_tls"' in text
    assert "istio_request_duration_milliseconds_bucket" in text and "_created" not in text


def test_a_caller_without_sidecar_is_reported_by_the_destination_only() -> None:
    telemetry = MeshTelemetry({STOCK.ip: STOCK}.get)
    at_stock = Destination(STOCK.ip, 8080, via="shop/stock")
    request = RouteRequest(host="stock", port=80, namespace="shop", client="127.0.0.1", method="GET", path="/")
    exchange = Exchange(
        request,
        {},
        at_stock,
        403,
        0.0,
        0.01,
        1,
        frozenset({"RBAC"}),
        tries=(Try(at_stock, 403, 0.0, frozenset({"RBAC"})),),
    )
    telemetry(exchange)
    text = telemetry.render("shop/stock-v1-abc-x").decode()
    assert 'source_workload="unknown"' in text and 'response_flags="RBAC"' in text
    assert 'destination_service="stock.shop.svc.cluster.local"' in text
    assert 'connection_security_policy="none"' in text
