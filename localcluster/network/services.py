"""kube-proxy's part: a Service name and port become one of its Ready endpoints, in turn.

Names resolve as cluster DNS resolves them for a pod: `name` in the caller's namespace, `name.ns`,
`name.ns.svc` and `name.ns.svc.cluster.local`; a Service's cluster IP routes to the same endpoints.
Endpoints are read from the Endpoints object the endpoints controller (or a user, for a Service
without selector) maintains, so the proxy routes to exactly what `kubectl get endpoints` shows.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Iterator
from typing import Any

from localcluster.api.service_network import SERVICE_CIDR
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
        return self._route(service.obj, request.port)

    def _route(self, service: dict[str, Any], port: int) -> Destination:
        """The next Ready endpoint of `service` for its port `port`."""
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        port_name = service_port_name(service, port)
        endpoints = self._store.get(_ENDPOINTS, namespace, name)
        ready = ready_addresses(endpoints.obj if endpoints else {}, port_name)
        if not ready:
            raise ProxyError(
                "NoReadyEndpoints",
                f'Service "{namespace}/{name}" has no Ready endpoint for port {port}: no Ready pod matches '
                f"its selector; see `kubectl get endpoints {name} -n {namespace}` and the pods' readiness",
            )
        turn = next(self._turns.setdefault((namespace, name, port_name), itertools.count()))
        host, target_port = ready[turn % len(ready)]
        return Destination(host, target_port, via=f"{namespace}/{name}")


class ClusterIPResolver(ServiceResolver):
    """Routes a Service's cluster IP as kube-proxy's rules for it do: `http://<cluster IP>:<port>/` to its endpoints.

    Cluster IPs are loopback addresses nothing listens on, so it must come before the resolver that
    sends loopback addresses straight on.
    """

    async def resolve(self, request: RouteRequest) -> Destination | None:
        try:
            address = ipaddress.ip_address(request.host)
        except ValueError:
            return None
        if address not in SERVICE_CIDR:
            return None
        for entry in self._store.list(_SERVICES, None)[0]:
            if request.host in ((entry.obj.get("spec") or {}).get("clusterIPs") or ()):
                return self._route(entry.obj, request.port)
        raise ProxyError(
            "ServiceNotFound",
            f"no Service has the cluster IP {request.host} (this cluster's Service range is {SERVICE_CIDR}): "
            "see `kubectl get services -A`",
        )


def service_port_name(service: dict[str, Any], port: int) -> str:
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


def ready_addresses(endpoints: dict[str, Any], port_name: str) -> list[tuple[str, int]]:
    """(ip, port) of every ready address serving the Service port named `port_name`."""
    found: list[tuple[str, int]] = []
    for subset in endpoints.get("subsets") or []:
        port = next((p["port"] for p in subset.get("ports") or [] if (p.get("name") or "") == port_name), None)
        if port is None:
            continue
        found.extend((address["ip"], int(port)) for address in subset.get("addresses") or [])
    return found
