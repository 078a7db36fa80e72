"""Istio semantics against live pods (services no lab uses): injection, routing through the ingress
gateway and from a pod's sidecar, subsets, faults, retries, timeouts, rewrites, headers, mirroring,
authorization and the sidecars' metrics."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

import labkit
from labkit.connection import Connection
from localcluster.settings import PROJECT_IMAGE
from tests.integration.conftest import LocalCluster, poll_until

pytestmark = pytest.mark.integration

NAMESPACE = "mesh-it"
ECHO = str(Path(__file__).parent / "podprograms" / "mesh_echo.py")
GATEWAY = "http://istio-ingressgateway.istio-system"
NETWORKING = ("networking.istio.io", "v1")
SECURITY = ("security.istio.io", "v1")


def echo_pod(name: str, version: str, account: str = "echo") -> dict[str, Any]:
    container = {
        "name": "echo",
        "image": PROJECT_IMAGE,
        "command": ["python", ECHO],
        "env": [{"name": "VERSION", "value": version}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/hits", "port": "http"}, "periodSeconds": 1},
    }
    labels = {"app": "echo", "version": version}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [container], "serviceAccountName": account},
    }


def caller_pod(name: str, url: str, count: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod (ServiceAccount `caller`) that GETs `url` `count` times through its HTTP_PROXY and prints each answer."""
    script = (
        "import json, urllib.request, urllib.error\n"
        f"for _ in range({count}):\n"
        "    try:\n"
        f"        answer = urllib.request.urlopen({url!r}, timeout=10)\n"
        "        print('ANSWER', answer.status, answer.read().decode(), flush=True)\n"
        "    except urllib.error.HTTPError as error:\n"
        "        print('ANSWER', error.code, json.dumps(error.read().decode()), flush=True)\n"
    )
    container = {"name": "call", "image": PROJECT_IMAGE, "command": ["python", "-c", script]}
    metadata = {"name": name, "labels": labels or {"app": "caller"}}
    return {
        "metadata": metadata,
        "spec": {"containers": [container], "restartPolicy": "Never", "serviceAccountName": "caller"},
    }


@pytest.fixture(scope="module")
def conn(cluster: LocalCluster) -> Iterator[Connection]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_HOME", str(cluster.home))
        for name in ("KUBECONFIG", "LAB_CONTEXT", "LAB_NAMESPACE"):
            patch.delenv(name, raising=False)
        with labkit.connect(namespace=NAMESPACE) as connection:
            yield connection


@pytest.fixture(scope="module")
def echo(conn: Connection) -> dict[str, str]:
    """A meshed namespace: echo v1 and v2 (pod name → IP) behind Service `echo`, subsets v1/v2, a Gateway."""
    conn.core.create_namespace({"metadata": {"name": NAMESPACE, "labels": {"istio-injection": "enabled"}}})
    for account in ("echo", "caller"):
        conn.core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": account}})
    for name, version in (("echo-v1", "v1"), ("echo-v2", "v2")):
        conn.core.create_namespaced_pod(NAMESPACE, echo_pod(name, version))
    service = {
        "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "echo"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    conn.core.create_namespaced_service(NAMESPACE, service)
    create(
        conn,
        "DestinationRule",
        "echo",
        {
            "host": "echo",
            "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
        },
    )
    create(
        conn,
        "Gateway",
        "edge",
        {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    )

    def ready_ips() -> dict[str, str]:
        endpoints = conn.core.read_namespaced_endpoints("echo", NAMESPACE)
        return {a.target_ref.name: a.ip for s in endpoints.subsets or [] for a in s.addresses or []}

    return poll_until(ready_ips, lambda ips: len(ips) == 2, "both echo pods Ready", timeout=60)


def create(conn: Connection, kind: str, name: str, spec: dict[str, Any]) -> None:
    group, version = SECURITY if kind == "AuthorizationPolicy" else NETWORKING
    plural = "authorizationpolicies" if kind == "AuthorizationPolicy" else f"{kind.lower()}s"
    body = {"apiVersion": f"{group}/{version}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    conn.custom.create_namespaced_custom_object(group, version, NAMESPACE, plural, body)


def delete(conn: Connection, kind: str, name: str) -> None:
    group, version = SECURITY if kind == "AuthorizationPolicy" else NETWORKING
    plural = "authorizationpolicies" if kind == "AuthorizationPolicy" else f"{kind.lower()}s"
    try:
        conn.custom.delete_namespaced_custom_object(group, version, NAMESPACE, plural, name)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture
def edge(conn: Connection, echo: dict[str, str]) -> Iterator[None]:
    """The test's VirtualService `edge` (bound to the Gateway) is removed afterwards."""
    yield
    delete(conn, "VirtualService", "edge")


def at_gateway(conn: Connection, rules: list[dict[str, Any]]) -> None:
    create(conn, "VirtualService", "edge", {"hosts": ["*"], "gateways": ["edge"], "http": rules})


def get(conn: Connection, path: str = "/", **kwargs: Any) -> httpx.Response:
    return conn.http.get(f"{GATEWAY}{path}", **kwargs)


def to(subset: str, weight: int | None = None) -> dict[str, Any]:
    destination: dict[str, Any] = {"destination": {"host": "echo", "subset": subset}}
    if weight is not None:
        destination["weight"] = weight
    return destination


def test_pods_of_a_labelled_namespace_have_sidecars(conn: Connection, echo: dict[str, str]) -> None:
    pod = conn.core.read_namespaced_pod("echo-v1", NAMESPACE)
    assert "sidecar.istio.io/status" in pod.metadata.annotations
    assert pod.metadata.labels["service.istio.io/canonical-revision"] == "v1"
    plain = conn.core.read_namespaced_pod("echo-v1", NAMESPACE).spec.containers
    assert [c.name for c in plain] == ["echo"]  # the proxy plays the sidecar: no container is added


def test_rules_match_in_order_first_match_wins(conn: Connection, edge: None) -> None:
    at_gateway(
        conn,
        [
            {"match": [{"uri": {"prefix": "/a"}}], "route": [to("v1")]},
            {
                "match": [{"uri": {"prefix": "/a/b"}}, {"headers": {"end-user": {"exact": "tester"}}}],
                "route": [to("v2")],
            },
            {"match": [{"uri": {"regex": "/v[0-9]+/.*"}, "method": {"exact": "GET"}}], "route": [to("v2")]},
            {"match": [{"queryParams": {"canary": {"exact": "yes"}}}], "route": [to("v2")]},
            {"route": [to("v1")]},
        ],
    )

    def version(path: str, **kwargs: Any) -> str:
        answer = poll_until(lambda: get(conn, path, **kwargs), lambda r: r.status_code == 200, f"GET {path}")
        return str(answer.json()["version"])

    assert version("/a/b/c") == "v1"  # the earlier, shorter prefix wins
    assert version("/x", headers={"end-user": "tester"}) == "v2"
    assert version("/v12/books") == "v2"
    assert version("/v12") == "v1"  # RE2 full match: `/v12` is not `/v[0-9]+/.*`
    assert version("/x?canary=yes") == "v2"
    assert version("/x?canary=no") == "v1"


def test_weights_split_within_binomial_tolerance(conn: Connection, edge: None) -> None:
    at_gateway(conn, [{"route": [to("v1", 80), to("v2", 20)]}])
    poll_until(lambda: get(conn), lambda r: r.status_code == 200, "the route to answer")
    versions = Counter(get(conn).json()["version"] for _ in range(200))
    # 20 % of 200 = 40, σ = √(200·0.2·0.8) ≈ 5.7: 4 σ either side.
    assert 17 <= versions["v2"] <= 63, versions


def test_an_undefined_subset_fails_at_request_time_with_503(conn: Connection, edge: None) -> None:
    at_gateway(conn, [{"route": [to("v3")]}])  # accepted by the API ...
    answer = poll_until(lambda: get(conn), lambda r: r.status_code != 404, "the route to be in place")
    assert (answer.status_code, answer.text) == (503, "")  # ... and Envoy's missing cluster at request time


def test_fault_abort_and_delay(conn: Connection, edge: None) -> None:
    at_gateway(conn, [{"fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}}, "route": [to("v1")]}])
    answer = poll_until(lambda: get(conn), lambda r: r.status_code != 404, "the route to be in place")
    assert (answer.status_code, answer.text) == (418, "fault filter abort")
    delete(conn, "VirtualService", "edge")
    at_gateway(conn, [{"fault": {"delay": {"fixedDelay": "300ms", "percentage": {"value": 100}}}, "route": [to("v1")]}])
    poll_until(lambda: get(conn).status_code, lambda status: status == 200, "the delayed route")
    started = time.monotonic()
    assert get(conn).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_retries_try_again_and_timeouts_cut_short(conn: Connection, edge: None, echo: dict[str, str]) -> None:
    at_gateway(
        conn,
        [
            {
                "match": [{"uri": {"prefix": "/status"}}],
                "retries": {"attempts": 3, "retryOn": "5xx"},
                "route": [to("v1")],
            },
            {"match": [{"uri": {"prefix": "/delay"}}], "timeout": "300ms", "route": [to("v1")]},
        ],
    )
    poll_until(lambda: get(conn, "/status/200").status_code, lambda status: status == 200, "the route to be in place")
    before = conn.http.get(f"http://{echo['echo-v1']}:8080/hits").json()["hits"].get("/status/503", 0)
    assert get(conn, "/status/503").status_code == 503
    after = conn.http.get(f"http://{echo['echo-v1']}:8080/hits").json()["hits"]["/status/503"]
    assert after - before == 4  # the first try and three retries
    served_503 = destination_samples(conn, echo["echo-v1"], response_code="503")
    assert served_503 >= 4  # echo-v1's sidecar reported every attempt
    started = time.monotonic()
    timed_out = get(conn, "/delay/3000")
    assert (timed_out.status_code, timed_out.text) == (504, "upstream request timeout")
    assert time.monotonic() - started < 2.5


def test_rewrite_headers_and_mirror(conn: Connection, edge: None, echo: dict[str, str]) -> None:
    at_gateway(
        conn,
        [
            {
                "match": [{"uri": {"prefix": "/old"}}],
                "rewrite": {"uri": "/new"},
                "headers": {
                    "request": {"set": {"x-set": "yes"}, "remove": ["x-drop"]},
                    "response": {"add": {"x-added": "1"}},
                },
                "route": [to("v1")],
            },
            {
                "match": [{"uri": {"prefix": "/copied"}}],
                "mirror": {"host": "echo", "subset": "v2"},
                "route": [to("v1")],
            },
        ],
    )
    answer = poll_until(
        lambda: get(conn, "/old/page?q=1", headers={"x-drop": "1"}), lambda r: r.status_code == 200, "the route"
    )
    seen = answer.json()
    assert seen["path"] == "/new/page?q=1"
    assert seen["headers"]["x-set"] == "yes" and "x-drop" not in seen["headers"]
    assert answer.headers["x-added"] == "1"
    assert get(conn, "/copied").json()["version"] == "v1"  # the answer is the route's; the copy's is dropped
    poll_until(
        lambda: conn.http.get(f"http://{echo['echo-v2']}:8080/hits").json()["hits"].get("/copied", 0),
        lambda hits: hits >= 1,
        "the mirrored copy at v2",
    )


def test_a_pods_sidecar_applies_mesh_routes_and_a_pod_without_one_does_not(
    cluster: LocalCluster, conn: Connection, echo: dict[str, str]
) -> None:
    create(conn, "VirtualService", "echo", {"hosts": ["echo"], "http": [{"route": [to("v2")]}]})
    try:
        conn.core.create_namespaced_pod(NAMESPACE, caller_pod("meshed-caller", "http://echo/", 10))
        outside = caller_pod("plain-caller", "http://echo/", 20, {"app": "caller", "sidecar.istio.io/inject": "false"})
        conn.core.create_namespaced_pod(NAMESPACE, outside)
        meshed = answers(conn, "meshed-caller", 10)
        plain = answers(conn, "plain-caller", 20)
    finally:
        delete(conn, "VirtualService", "echo")
    assert {json.loads(body)["version"] for _, body in meshed} == {"v2"}
    assert {json.loads(body)["version"] for _, body in plain} == {"v1", "v2"}  # plain Service routing


def answers(conn: Connection, pod: str, count: int) -> list[tuple[int, str]]:
    def read() -> list[tuple[int, str]]:
        try:
            log = conn.core.read_namespaced_pod_log(pod, NAMESPACE)
        except ApiException:
            return []
        lines = [line.split(" ", 2) for line in log.splitlines() if line.startswith("ANSWER ")]
        return [(int(status), body) for _, status, body in lines]

    return poll_until(read, lambda found: len(found) == count, f"{count} answers in the log of {pod}", timeout=60)


def test_authorization_deny_then_allow(conn: Connection, edge: None) -> None:
    at_gateway(conn, [{"route": [to("v1")]}])
    gateway = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    create(
        conn,
        "AuthorizationPolicy",
        "allow-gateway-reads",
        {
            "selector": {"matchLabels": {"app": "echo"}},
            "rules": [{"from": [{"source": {"principals": [gateway]}}], "to": [{"operation": {"methods": ["GET"]}}]}],
        },
    )
    create(
        conn,
        "AuthorizationPolicy",
        "deny-admin",
        {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]},
    )
    try:
        poll_until(lambda: get(conn, "/admin").status_code, lambda status: status == 403, "the policies to apply")
        denied = get(conn, "/admin")
        assert denied.text == "RBAC: access denied"  # DENY wins over the ALLOW that matches
        assert get(conn, "/books").status_code == 200
        assert conn.http.post(f"{GATEWAY}/books").status_code == 403  # no ALLOW rule matches a POST
    finally:
        delete(conn, "AuthorizationPolicy", "allow-gateway-reads")
        delete(conn, "AuthorizationPolicy", "deny-admin")


def destination_samples(conn: Connection, pod_ip: str, **labels: str) -> float:
    """istio_requests_total reported by the sidecar at `pod_ip` as destination, summed over `labels`."""
    text = conn.http.get(f"http://{pod_ip}:15020/stats/prometheus").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "istio_requests_total"
        and sample.labels["reporter"] == "destination"
        and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_a_caller_without_sidecar_is_refused_by_the_destinations_sidecar(
    conn: Connection, echo: dict[str, str]
) -> None:
    create(
        conn,
        "AuthorizationPolicy",
        "only-callers",
        {
            "selector": {"matchLabels": {"app": "echo"}},
            "rules": [{"from": [{"source": {"principals": [f"cluster.local/ns/{NAMESPACE}/sa/caller"]}}]}],
        },
    )
    try:
        denied = poll_until(
            lambda: conn.http.get("http://echo/"), lambda r: r.status_code == 403, "the policy to apply"
        )
        assert denied.text == "RBAC: access denied"  # plain Service routing, but echo's sidecar decides
        assert conn.http.get(f"http://{echo['echo-v1']}:8080/").status_code == 403  # by pod address too
        conn.core.create_namespaced_pod(NAMESPACE, caller_pod("allowed-caller", "http://echo/", 3))
        assert {status for status, _ in answers(conn, "allowed-caller", 3)} == {200}
    finally:
        delete(conn, "AuthorizationPolicy", "only-callers")


def test_sidecars_serve_istio_metrics(conn: Connection, edge: None, echo: dict[str, str]) -> None:
    at_gateway(conn, [{"route": [to("v2")]}])
    poll_until(lambda: get(conn).status_code, lambda status: status == 200, "the route")
    stats = conn.http.get(f"http://{echo['echo-v2']}:15020/stats/prometheus")
    assert stats.status_code == 200
    sample = next(line for line in stats.text.splitlines() if line.startswith("istio_requests_total{"))
    assert 'reporter="destination"' in sample and 'destination_version="v2"' in sample
    assert 'source_workload="istio-ingressgateway"' in sample
