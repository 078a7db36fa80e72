"""Hostile and malformed requests against a real localcluster: only 2xx/4xx `Status` answers, never a 500,
and the server keeps serving. This module's cluster is its own (fuzzing may delete anything)."""

from __future__ import annotations

import json
import socket
import ssl
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import LocalCluster

PREFIXES = [
    "/api/v1",
    "/apis/apps/v1",
    "/apis/networking.istio.io/v1beta1",
    "/apis/serving.knative.dev/v1",
    "/api",
    "/apis",
    "/apis/apps",
    "/openapi/v3",
    "/openapi/v3/apis/apps/v1",
    "/openapi/v2",
    "/version",
    "",
]
WORDS = [
    "namespaces",
    "bookstore",
    "default",
    "pods",
    "deployments",
    "configmaps",
    "services",
    "virtualservices",
    "status",
    "scale",
    "log",
    "watch",
    "web",
    "..",
    "%2e%2e",
    ".",
    "%00",
    "",
    "a" * 300,
    "ünïcode",
    "name;x",
    "finalize",
    "exec",
    "proxy",
]
CONTENT_TYPES = [
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
    "*/*",
    "application/json; charset=utf-16",
    "garbage/\u00ff",
]
QUERY_KEYS = [
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "resourceVersion",
    "watch",
    "dryRun",
    "fieldManager",
    "fieldValidation",
    "force",
    "propagationPolicy",
    "gracePeriodSeconds",
    "pretty",
    "allowWatchBookmarks",
    "sendInitialEvents",
    "includeObject",
    "container",
    "tailLines",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=5),
    max_leaves=30,
)
object_like = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["v1", "apps/v1", "networking.istio.io/v1beta1", "x/y", ""]),
        "kind": st.sampled_from(["ConfigMap", "Deployment", "Pod", "VirtualService", "Namespace", "Nope"]),
        "metadata": st.fixed_dictionaries(
            {"name": st.text(max_size=70)},
            optional={
                "namespace": st.text(max_size=20),
                "labels": json_values,
                "resourceVersion": st.text(max_size=10),
                "finalizers": json_values,
                "ownerReferences": json_values,
                "generateName": st.text(max_size=10),
            },
        ),
    },
    optional={"spec": json_values, "data": json_values, "status": json_values},
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    object_like.map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=100, max_value=50_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(min_value=100, max_value=5_000).map(lambda depth: b"a:\n" + b"  - " * depth + b"x"),
    st.just(b"\xff\xfe\x00\x01"),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], list[tuple[str, str]], bytes]:
    segments = draw(st.lists(st.sampled_from(WORDS) | st.text(max_size=12), max_size=6))
    path = draw(st.sampled_from(PREFIXES)) + "".join("/" + quote(segment, safe="%;:@.") for segment in segments)
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]))
    headers = {"Content-Type": draw(st.sampled_from(CONTENT_TYPES))}
    if draw(st.booleans()):
        headers["Accept"] = draw(
            st.sampled_from(
                [
                    "application/json;as=Table;v=v1;g=meta.k8s.io",
                    "application/vnd.kubernetes.protobuf",
                    "*/*",
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                    "text/html",
                ]
            )
        )
    query = draw(
        st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | st.text(max_size=8), st.text(max_size=30)), max_size=4)
    )
    # Watches end quickly so a fuzzed watch never holds the test up.
    query.append(("timeoutSeconds", "1"))
    return method, path, headers, query, draw(bodies)


@pytest.fixture(scope="module")
def http(cluster: LocalCluster):
    with cluster.http() as client:
        yield client


def assert_status_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400 and response.request.method != "HEAD":
        body = response.json()
        assert body["kind"] == "Status" and body["status"] == "Failure"
        assert body["code"] == response.status_code and body["reason"]


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_hostile_requests_get_4xx_status_answers(http: httpx.Client, request) -> None:
    method, path, headers, query, body = request
    raw_headers = {name: value.encode("latin-1") for name, value in headers.items()}
    response = http.request(method, path or "/", headers=raw_headers, params=query, content=body)
    assert_status_answer(response)


def test_oversized_body_is_413_and_the_server_keeps_serving(http: httpx.Client) -> None:
    huge = b'{"metadata":{"name":"big"},"data":{"x":"' + b"a" * (4 * 1024 * 1024) + b'"}}'
    response = http.post(
        "/api/v1/namespaces/bookstore/configmaps", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["reason"] == "RequestEntityTooLarge"


def test_lying_content_length_is_refused(cluster: LocalCluster, http: httpx.Client) -> None:
    """A declared length over the limit is refused before the body is read (httpx will not send this)."""
    url = httpx.URL(str(http.base_url))
    context = ssl.create_default_context(cafile=str(cluster.home / "pki" / "ca.crt"))
    token = http.headers["Authorization"]
    request = (
        f"POST /api/v1/namespaces/bookstore/configmaps HTTP/1.1\r\nHost: {url.host}\r\n"
        f"Authorization: {token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 99999999999\r\nConnection: close\r\n\r\n{}"
    ).encode()
    with (
        socket.create_connection((url.host, url.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=url.host) as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"reason":"RequestEntityTooLarge"' in answer


def test_server_still_serves_after_the_fuzzing(http: httpx.Client) -> None:
    assert http.get("/readyz").status_code == 200
    listed = http.get("/api/v1/namespaces")
    assert listed.status_code == 200 and listed.json()["kind"] == "NamespaceList"
