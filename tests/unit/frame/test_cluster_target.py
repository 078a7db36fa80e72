"""labkit's HTTP into a real cluster from outside it: which requests go through the API server's service
proxy and which to the ingress gateway (httpx's MockTransport stands in for the network; the routing is
ours). `lab up --target cluster`'s record is read in test_lab_home.py."""

from __future__ import annotations

import httpx
import pytest
from kubernetes import client

from labkit.connection import ClusterTransport


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> tuple[ClusterTransport, list[httpx.Request]]:
    monkeypatch.setenv("LAB_NAMESPACE", "bookstore")
    configuration = client.Configuration()
    configuration.host = "https://api.example:6443"
    configuration.api_key = {"authorization": "Bearer attendee-token"}
    made = ClusterTransport(client.ApiClient(configuration), "http://127.0.0.1:8080")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    made.inner = httpx.MockTransport(answer)
    return made, seen


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://stock/api/books?limit=2",
            "https://api.example:6443/api/v1/namespaces/bookstore/services/stock:80/proxy/api/books?limit=2",
        ),
        (
            "http://stock.shop:8080/health",
            "https://api.example:6443/api/v1/namespaces/shop/services/stock:8080/proxy/health",
        ),
        (
            "http://tc.bookstore.svc.cluster.local/status",
            "https://api.example:6443/api/v1/namespaces/bookstore/services/tc:80/proxy/status",
        ),
    ],
)
def test_services_go_through_the_api_servers_proxy_with_the_callers_credentials(
    transport: tuple[ClusterTransport, list[httpx.Request]], url: str, expected: str
) -> None:
    made, seen = transport
    with httpx.Client(transport=made) as http:
        assert http.get(url).json() == {"ok": True}
    (request,) = seen
    assert str(request.url) == expected
    assert request.headers["authorization"] == "Bearer attendee-token"


@pytest.mark.parametrize(
    "url", ["http://storefront.bookstore.example.com/", "http://istio-ingressgateway.istio-system/api/books"]
)
def test_other_hosts_go_to_the_ingress_gateway_with_their_host(
    transport: tuple[ClusterTransport, list[httpx.Request]], url: str
) -> None:
    made, seen = transport
    with httpx.Client(transport=made) as http:
        http.get(url, headers={"x-user": "ada"})
    (request,) = seen
    assert str(request.url).startswith("http://127.0.0.1:8080/")
    assert request.headers["host"] == httpx.URL(url).host and request.headers["x-user"] == "ada"
    assert "authorization" not in request.headers


def test_without_an_ingress_other_hosts_are_a_clear_error() -> None:
    configuration = client.Configuration()
    configuration.host = "https://api.example:6443"
    with (
        httpx.Client(transport=ClusterTransport(client.ApiClient(configuration), "")) as http,
        pytest.raises(httpx.ConnectError, match="no ingress gateway is reachable from here"),
    ):
        http.get("http://storefront.bookstore.example.com/")
