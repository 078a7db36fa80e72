"""Pods and Services as the network code finds them, written through the in-process cluster (tests/unit/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from localcluster.api.cluster import Cluster

NAMESPACE = "bookstore"


def create_service(cluster: Cluster, name: str, spec: dict[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    services = cluster.registry.get("", "services")
    return cluster.create(services, "v1", namespace, {"metadata": {"name": name}, "spec": spec}).obj


def create_pod(
    cluster: Cluster,
    name: str,
    *,
    labels: dict[str, str],
    ip: str | None = None,
    ready: bool = True,
    ports: list[dict[str, Any]] | None = None,
    namespace: str = NAMESPACE,
    phase: str = "Running",
) -> dict[str, Any]:
    """A pod as the kubelet would leave it: scheduled, with an IP and a Ready condition (when `ip`)."""
    pods = cluster.registry.get("", "pods")
    container = {"name": "web", "image": "ghcr.io/example/web:1", "ports": ports or [{"containerPort": 8080}]}
    body = {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [container], "nodeName": "local"}}
    pod = cluster.create(pods, "v1", namespace, body).obj
    if ip is None:
        return pod
    return set_pod_status(cluster, pod, ip=ip, ready=ready, phase=phase)


def set_pod_status(cluster: Cluster, pod: dict[str, Any], *, ip: str, ready: bool, phase: str = "Running") -> Any:
    pods = cluster.registry.get("", "pods")
    metadata = pod["metadata"]
    fresh = cluster.get(pods, metadata["namespace"], metadata["name"])
    fresh["status"] = {
        **fresh.get("status", {}),
        "phase": phase,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    return cluster.replace(pods, "v1", metadata["namespace"], metadata["name"], fresh, subresource="status").obj


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
