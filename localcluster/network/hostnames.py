"""Pod hostnames under a headless Service: `<hostname>.<service>[.<ns>[.svc[.cluster.local]]]`.

Cluster DNS gives a pod whose `hostname` is set and whose `subdomain` names a headless Service of
its namespace a record of its own (what a StatefulSet's pods get: `web-0.nginx`), pointing at the
pod's address, any port. The endpoints controller writes those pods' hostnames into the Service's
Endpoints, and this resolver reads them there, as CoreDNS does. A Ready pod is reachable; a pod that
is not Ready is not published (unless the Service has `publishNotReadyAddresses`).

A two-label name is first a pod hostname in the caller's namespace (`web-0.nginx`, as a pod's DNS
search path tries `web-0.nginx.<ns>.svc.cluster.local` first) and otherwise left to the Service
resolver (`service.namespace`).
"""

from __future__ import annotations

from typing import Any

from localcluster.network.routing import Destination, ProxyError, RouteRequest
from localcluster.network.services import CLUSTER_DOMAIN, DNS_LABEL
from localcluster.store import Store

_SERVICES = "core/services"
_ENDPOINTS = "core/endpoints"


def pod_hostname_of_host(host: str, caller_namespace: str) -> tuple[str, str, str] | None:
    """(namespace, service, hostname) a host may name, or None if it has no pod hostname's shape."""
    labels = host.lower().rstrip(".").split(".")
    qualified = False
    if labels[-2:] == CLUSTER_DOMAIN.split("."):
        labels, qualified = labels[:-2], True
    if labels[-1:] == ["svc"]:
        labels, qualified = labels[:-1], True
    elif qualified:
        return None  # under cluster.local but not under svc
    if not all(DNS_LABEL.match(label) for label in labels):
        return None
    if len(labels) == 2 and not qualified:
        return caller_namespace, labels[1], labels[0]
    if len(labels) == 3:
        return labels[2], labels[1], labels[0]
    return None


class PodHostnameResolver:
    """Routes `<hostname>.<service>` names to the pod's own address (headless Service records)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def resolve(self, request: RouteRequest) -> Destination | None:
        identity = pod_hostname_of_host(request.host, request.namespace)
        if identity is None:
            return None
        namespace, service_name, hostname = identity
        service = self._store.get(_SERVICES, namespace, service_name)
        endpoints = self._store.get(_ENDPOINTS, namespace, service_name)
        if service is None or endpoints is None:
            return None  # not a pod record; `name.namespace` may still be a Service
        ready, not_ready = _addresses(endpoints.obj, hostname)
        if ready:
            return Destination(ready, request.port, via=f"{namespace}/{service_name}")
        if not_ready:
            raise ProxyError(
                "NoReadyEndpoints",
                f'pod "{hostname}" of Service "{namespace}/{service_name}" is not Ready, so its name '
                f"{request.host!r} is not published; see `kubectl get pod {hostname} -n {namespace}`",
            )
        return None


def _addresses(endpoints: dict[str, Any], hostname: str) -> tuple[str | None, str | None]:
    """The IP of the address with this hostname among the ready ones, and among the not-ready ones."""
    found: dict[str, str | None] = {"addresses": None, "notReadyAddresses": None}
    for subset in endpoints.get("subsets") or []:
        for key in found:
            for address in subset.get(key) or []:
                if address.get("hostname") == hostname and found[key] is None:
                    found[key] = address.get("ip")
    return found["addresses"], found["notReadyAddresses"]
