"""kube-proxy's part: a Service name and port become one of its Ready endpoints, in turn.

Names resolve as cluster DNS resolves them for a pod: `name` in the caller's namespace, `name.ns`,
`name.ns.svc` and `name.ns.svc.cluster.local`. Endpoints are read from the Endpoints object the
endpoints controller (or a user, for a Service without selector) maintains, so the proxy routes to
exactly what `kubectl get endpoints` shows.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

from localcluster.network.routing import Destination, ProxyError, RouteRequest
from localcluster.store import Store

CLUSTER_DOMAIN = "cluster.local"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SERVICES = "core/services"
_ENDPOINTS = "core/endpoints"


def service_of_host(host: str, caller_namespace: str) -> tuple[str, str] | None:
    """(namespace, name) a host names as a Service, or None if it is not a Service's DNS name."""
    labels = host.lower().rstrip(".").split(".")
    if labels[-2:] == CLUSTER_DOMAIN.split("."):
        labels = labels[:-2]
        if labels[-1:] != ["svc"]:
            return None
    if len(labels) == 3 and labels[2] == "svc":
        labels = labels[:2]
    if not all(DNS_LABEL.match(label) for label in labels):
        return None
    if len(labels) == 1:
        return caller_namespace, labels[0]
    if len(labels) == 2:
        return labels[1], labels[0]
    return None


class ServiceResolver:
    """Routes Service names over the Service's Ready endpoints, round-robin as kube-proxy's IPVS mode does."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._turns: dict[tuple[str, str, str], Iterator[int]] = {}

    async def resolve(self, request: RouteRequest) -> Destination | None:
        identity = service_of_host(request.host, request.namespace)
        if identity is None:
            return None
        namespace, name = identity
        service = self._store.get(_SERVICES, namespace, name)
        if service is None:
            raise ProxyError(
                "ServiceNotFound",
                f'no Service "{name}" in namespace "{namespace}" (the host {request.host!r} names it): '
                f"create it, or check the name with `kubectl get services -n {namespace}`",
            )
        port_name = _service_port_name(service.obj, request.port)
        endpoints = self._store.get(_ENDPOINTS, namespace, name)
        ready = _ready_addresses(endpoints.obj if endpoints else {}, port_name)
        if not ready:
            raise ProxyError(
                "NoReadyEndpoints",
                f'Service "{namespace}/{name}" has no Ready endpoint for port {request.port}: no Ready pod matches '
                f"its selector; see `kubectl get endpoints {name} -n {namespace}` and the pods' readiness",
            )
        turn = next(self._turns.setdefault((namespace, name, port_name), itertools.count()))
        host, port = ready[turn % len(ready)]
        return Destination(host, port, via=f"{namespace}/{name}")


def _service_port_name(service: dict[str, Any], port: int) -> str:
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        raise ProxyError(
            "ExternalName",
            f'Service "{service["metadata"]["name"]}" is an ExternalName for {spec.get("externalName")!r}, '
            "outside localcluster: its network is the loopback addresses only",
        )
    ports = spec.get("ports") or []
    for service_port in ports:
        if service_port.get("port") == port and service_port.get("protocol", "TCP") == "TCP":
            return str(service_port.get("name") or "")
    exposed = ", ".join(str(p.get("port")) for p in ports) or "none"
    raise ProxyError(
        "PortNotExposed",
        f'Service "{service["metadata"]["name"]}" does not expose port {port} (its ports: {exposed}): '
        "put the Service's port in the URL, e.g. http://name:PORT/",
    )


def _ready_addresses(endpoints: dict[str, Any], port_name: str) -> list[tuple[str, int]]:
    """(ip, port) of every ready address serving the Service port named `port_name`."""
    found: list[tuple[str, int]] = []
    for subset in endpoints.get("subsets") or []:
        port = next((p["port"] for p in subset.get("ports") or [] if (p.get("name") or "") == port_name), None)
        if port is None:
            continue
        found.extend((address["ip"], int(port)) for address in subset.get("addresses") or [])
    return found
