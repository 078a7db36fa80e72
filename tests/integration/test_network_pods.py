"""End to end with real pods: localcluster's kubelet runs them, the endpoints controller lists them,
and the service proxy carries calls to them from a notebook (labkit) and from another pod (HTTP_PROXY)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from labkit.connection import Connection
from localcluster.settings import PROJECT_IMAGE
from tests.integration.conftest import poll_until

pytestmark = pytest.mark.integration

NAMESPACE = "bookstore"
APP = "web-e2e"
HTTP_SERVER = str(Path(__file__).parent / "podprograms" / "http_server.py")


def server_pod(name: str) -> dict[str, Any]:
    container = {
        "name": "web",
        "image": PROJECT_IMAGE,
        "command": ["python", HTTP_SERVER],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1},
    }
    return {"metadata": {"name": name, "labels": {"app": APP}}, "spec": {"containers": [container]}}


def caller_pod(name: str, url: str) -> dict[str, Any]:
    """A pod that calls `url` once with the standard library (which honours HTTP_PROXY) and prints the answer."""
    script = f"import urllib.request; print('answer:', urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    container = {"name": "call", "image": PROJECT_IMAGE, "command": ["python", "-c", script]}
    return {"metadata": {"name": name}, "spec": {"containers": [container], "restartPolicy": "Never"}}


def run_caller(conn: Connection, name: str, url: str, namespace: str = NAMESPACE) -> tuple[str, str]:
    """Run `caller_pod(name, url)` to its end: its phase (Succeeded or Failed) and its log."""
    conn.core.create_namespaced_pod(namespace, caller_pod(name, url))
    phase = poll_until(
        lambda: conn.core.read_namespaced_pod(name, namespace).status.phase,
        lambda phase: phase in ("Succeeded", "Failed"),
        f"pod {name} to finish",
    )
    return phase, conn.core.read_namespaced_pod_log(name, namespace)


@pytest.fixture
def web(conn: Connection) -> Iterator[list[str]]:
    """Two server pods behind the Service `web-e2e`; removed (pods first) afterwards."""
    names = [f"{APP}-0", f"{APP}-1"]
    service = {
        "metadata": {"name": APP},
        "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    conn.core.create_namespaced_service(NAMESPACE, service)
    try:
        for name in names:
            conn.core.create_namespaced_pod(NAMESPACE, server_pod(name))
        yield names
    finally:
        for name in [*names, "caller-short", "caller-fqdn", "caller-direct"]:
            try:
                conn.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        conn.core.delete_namespaced_service(APP, NAMESPACE)


def ready_addresses(conn: Connection) -> list[tuple[str, str]]:
    endpoints = conn.core.read_namespaced_endpoints(APP, NAMESPACE)
    return sorted((a.target_ref.name, a.ip) for s in endpoints.subsets or [] for a in s.addresses or [])


def served_by(conn: Connection, count: int) -> set[str]:
    answers = [conn.http.get(f"http://{APP}/") for _ in range(count)]
    return {answer.text for answer in answers if answer.status_code == 200}


def test_real_pods_answer_through_the_service_from_labkit_and_from_a_pod(conn: Connection, web: list[str]) -> None:
    addresses = poll_until(lambda: ready_addresses(conn), lambda found: len(found) == 2, "both pods to be Ready")
    assert [name for name, _ in addresses] == web
    assert all(ip.startswith("127.") and ip != "127.0.0.1" for _, ip in addresses)

    assert poll_until(lambda: served_by(conn, 6), lambda seen: seen == set(web), "answers from both pods")

    for name, url in (
        ("caller-short", f"http://{APP}/"),
        ("caller-fqdn", f"http://{APP}.{NAMESPACE}.svc.cluster.local/"),
    ):
        phase, logs = run_caller(conn, name, url)
        assert phase == "Succeeded", logs
        assert any(f"answer: {server}" in logs for server in web), logs


def test_a_pod_reaches_a_plain_service_directly_as_through_kube_proxy(conn: Connection, web: list[str]) -> None:
    """No process between two plain pods: the server sees the caller's own address, as on a real node."""
    poll_until(lambda: ready_addresses(conn), lambda found: len(found) == 2, "both pods to be Ready")
    phase, logs = run_caller(conn, "caller-direct", f"http://{APP}/peer")
    caller_ip = conn.core.read_namespaced_pod("caller-direct", NAMESPACE).status.pod_ip
    assert phase == "Succeeded" and f"answer: {caller_ip} /peer" in logs, logs


def test_deleted_pod_leaves_the_rotation(conn: Connection, web: list[str]) -> None:
    poll_until(lambda: ready_addresses(conn), lambda found: len(found) == 2, "both pods to be Ready")
    conn.core.delete_namespaced_pod(web[0], NAMESPACE, grace_period_seconds=0)
    poll_until(lambda: [name for name, _ in ready_addresses(conn)], lambda names: names == [web[1]], "one pod left")
    assert served_by(conn, 4) == {web[1]}


def test_a_pod_resolves_short_names_in_its_own_namespace(conn: Connection) -> None:
    """The proxy knows a calling pod by its source address, so `http://web` means the caller's namespace."""
    namespace = "elsewhere"
    conn.core.create_namespace({"metadata": {"name": namespace}})
    try:
        conn.core.create_namespaced_service(
            namespace,
            {
                "metadata": {"name": APP},
                "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": "http"}]},
            },
        )
        conn.core.create_namespaced_pod(namespace, server_pod("local-server"))
        poll_until(
            lambda: conn.core.read_namespaced_endpoints(APP, namespace).subsets,
            lambda subsets: bool(subsets and subsets[0].addresses),
            "the server to be Ready",
        )
        phase, logs = run_caller(conn, "local-caller", f"http://{APP}/", namespace)
        assert phase == "Succeeded" and "answer: local-server" in logs, logs
    finally:
        conn.core.delete_namespace(namespace)
