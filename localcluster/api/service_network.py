"""The Service network: cluster IPs and node ports allocated as a Service is written, and `default/kubernetes`.

As the apiserver's Service registry, a create allocates `spec.clusterIP(s)` from the Service CIDR
(unless the Service is headless, `None`, or an ExternalName) and a `nodePort` for each port of a
NodePort or LoadBalancer Service; an update keeps what was allocated unless the type change releases
it. Values a client asks for are checked: inside the range, not taken. Nothing is kept besides the
Services themselves, so what is allocated is exactly what the stored Services hold.

The CIDR is on loopback, as kind's 10.96.0.0/12 but in 127.0.0.0/8 (away from the pod networks at
127.200-254), so the service proxy can answer for a cluster IP: a request through it to
`http://<cluster IP>:<port>/` goes to the Service (see network/services.py). Node ports are
allocated and validated but nothing listens on them (see the README).
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from localcluster.api.errors import Cause, invalid

SERVICE_CIDR = ipaddress.IPv4Network("127.96.0.0/12")
NODE_PORTS = range(30000, 32768)
#: The first address of the range is the `kubernetes` Service's, as upstream's bootstrap controller takes it.
KUBERNETES_SERVICE_IP = str(SERVICE_CIDR.network_address + 1)
_KEY = "core/services"

Obj = dict[str, Any]


def _needs_node_ports(spec: Obj) -> bool:
    service_type = spec.get("type", "ClusterIP")
    if service_type == "LoadBalancer":
        return spec.get("allocateLoadBalancerNodePorts", True) is not False
    return service_type == "NodePort"


def _needs_cluster_ip(spec: Obj) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName"


def allocate(services: list[Obj], service: Obj, old: Obj | None) -> None:
    """Fill in `service`'s cluster IPs and node ports (in place), given every stored Service; 422 on a bad ask."""
    name = service["metadata"].get("name", "")
    identity = (service["metadata"].get("namespace"), name)
    others = [s for s in services if (s["metadata"].get("namespace"), s["metadata"]["name"]) != identity]
    spec = service.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    causes = _allocate_cluster_ip(spec, old_spec, others) + _allocate_node_ports(spec, old_spec, others)
    if causes:
        raise invalid("Service", "", name, causes)


def _allocate_cluster_ip(spec: Obj, old_spec: Obj, others: list[Obj]) -> list[Cause]:
    if not _needs_cluster_ip(spec):
        spec.pop("clusterIP", None)  # an ExternalName has none; a type change to it releases the address
        spec.pop("clusterIPs", None)
        return []
    asked = spec.get("clusterIP") or next(iter(spec.get("clusterIPs") or []), "")
    if not asked and _needs_cluster_ip(old_spec) and old_spec.get("clusterIP"):
        asked = old_spec["clusterIP"]  # an update that leaves them out keeps them (upstream's patchAllocatedValues)
    if spec.get("clusterIPs") and spec["clusterIPs"][0] != asked:
        return [Cause("spec.clusterIPs", f"Invalid value: {spec['clusterIPs']!r}: must match first value of clusterIP")]
    if asked == "None":
        spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
        return []
    if asked and asked == old_spec.get("clusterIP"):
        spec["clusterIP"], spec["clusterIPs"] = asked, [asked]
        return []
    taken = {ip for s in others for ip in ((s.get("spec") or {}).get("clusterIPs") or [])}
    if asked:
        problem = _ip_problem(asked, taken)
        if problem:
            return [Cause("spec.clusterIPs", f'Invalid value: ["{asked}"]: failed to allocate IP {asked}: {problem}')]
        spec["clusterIP"], spec["clusterIPs"] = asked, [asked]
        return []
    chosen = _free_ip(taken)
    spec["clusterIP"], spec["clusterIPs"] = chosen, [chosen]
    return []


def _ip_problem(asked: str, taken: set[str]) -> str:
    try:
        address = ipaddress.IPv4Address(asked)
    except ValueError:
        return "must be a valid IP address"
    if address not in SERVICE_CIDR or address in (SERVICE_CIDR.network_address, SERVICE_CIDR.broadcast_address):
        return f"provided IP is not in the valid range. The range of valid IPs is {SERVICE_CIDR}"
    if asked in taken:
        return "provided IP is already allocated"
    return ""


def _free_ip(taken: set[str]) -> str:
    """A random free address (upstream's allocator is random too), never the kubernetes Service's."""
    first, size = int(SERVICE_CIDR.network_address), SERVICE_CIDR.num_addresses
    while True:
        candidate = str(ipaddress.IPv4Address(first + random.randrange(2, size - 1)))
        if candidate not in taken:
            return candidate


def _allocate_node_ports(spec: Obj, old_spec: Obj, others: list[Obj]) -> list[Cause]:
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    if not _needs_node_ports(spec):
        return []
    taken = {
        (p.get("nodePort"), p.get("protocol", "TCP"))
        for s in others
        for p in (s.get("spec") or {}).get("ports") or []
        if p.get("nodePort")
    }
    kept = {}
    if _needs_node_ports(old_spec):
        kept = {
            (p.get("port"), p.get("protocol", "TCP")): p["nodePort"]
            for p in old_spec.get("ports") or []
            if p.get("nodePort")
        }
    causes = []
    mine: set[tuple[int, str]] = set()
    for index, port in enumerate(ports):
        protocol = port.get("protocol", "TCP")
        asked = port.get("nodePort") or kept.get((port.get("port"), protocol))
        if asked:
            if asked not in NODE_PORTS:
                causes.append(
                    Cause(
                        f"spec.ports[{index}].nodePort",
                        f"Invalid value: {asked}: provided port is not in the valid range. "
                        f"The range of valid ports is {NODE_PORTS.start}-{NODE_PORTS.stop - 1}",
                    )
                )
            elif (asked, protocol) in taken or (asked, protocol) in mine:
                causes.append(
                    Cause(
                        f"spec.ports[{index}].nodePort", f"Invalid value: {asked}: provided port is already allocated"
                    )
                )
        else:
            free = [n for n in NODE_PORTS if (n, protocol) not in taken and (n, protocol) not in mine]
            if not free:
                causes.append(Cause(f"spec.ports[{index}].nodePort", "Internal error: range is full"))
                continue
            asked = random.choice(free)
        port["nodePort"] = asked
        mine.add((asked, protocol))
    return causes


def kubernetes_service(api_host: str, api_port: int) -> tuple[Obj, Obj, Obj]:
    """`default/kubernetes`: the Service, its Endpoints and its EndpointSlice, pointing at the API server."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": KUBERNETES_SERVICE_IP,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}],
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [
            {"addresses": [{"ip": api_host}], "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}
        ],
    }
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [api_host], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}],
    }
    return service, endpoints, endpoint_slice
