"""Endpoints and EndpointSlices from Services' selectors and their pods, as kube-controller-manager does.

For every Service with a selector, the endpoints controller keeps an Endpoints object of the same
name (Ready pods under `addresses`, the others under `notReadyAddresses`) and the endpointslice
controller keeps discovery.k8s.io/v1 EndpointSlices owned by the Service (every endpoint with its
ready/serving/terminating conditions). Target ports given by name are looked up in each pod's
container ports. Services without a selector are left alone: their Endpoints belong to the user.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.endpoints")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
#: Tells the endpointslice mirroring controller that these Endpoints already have slices.
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
HEADLESS_LABEL = "service.kubernetes.io/headless"
#: Upstream's default --max-endpoints-per-slice.
MAX_ENDPOINTS_PER_SLICE = 100

_SERVICES = "core/services"
_PODS = "core/pods"
_ENDPOINTS = "core/endpoints"
_SLICES = "discovery.k8s.io/endpointslices"
#: The kinds whose changes can change an Endpoints object.
ENDPOINTS_KEYS = frozenset({_SERVICES, _PODS, _ENDPOINTS, _SLICES})

Obj = dict[str, Any]


def is_pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def should_pod_be_in_endpoints(pod: Obj, *, include_terminating: bool) -> bool:
    """Not finished, has an IP, and (unless terminating pods are wanted) not being deleted."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or not status.get("podIP"):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod's port for a Service port: targetPort's number, or the container port it names."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def _endpoint_port(service_port: Obj, number: int, *, named_always: bool) -> Obj:
    """An EndpointPort; Endpoints omit an empty name (omitempty), EndpointSlices keep it ("")."""
    port: Obj = {"port": number, "protocol": service_port.get("protocol", "TCP")}
    if service_port.get("name") or named_always:
        port["name"] = service_port.get("name") or ""
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def _pod_ports(pod: Obj, service_ports: list[Obj], *, named_always: bool) -> list[Obj]:
    """The Service's ports as this pod serves them (ports it lacks are left out, as upstream logs and skips)."""
    found = []
    for service_port in service_ports:
        number = find_port(pod, service_port)
        if number is not None:
            found.append(_endpoint_port(service_port, number, named_always=named_always))
    return found


def _ports_key(ports: list[Obj]) -> tuple[tuple[str, int, str], ...]:
    return tuple(sorted((p.get("name") or "", p["port"], p["protocol"]) for p in ports))


def _target_ref(pod: Obj) -> Obj:
    metadata = pod["metadata"]
    return {"kind": "Pod", "namespace": metadata["namespace"], "name": metadata["name"], "uid": metadata["uid"]}


def _hostname(pod: Obj, service: Obj) -> str | None:
    """A pod's hostname is published when its subdomain is the Service's name (headless DNS records)."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        return str(spec["hostname"])
    return None


def _is_headless(service: Obj) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def _labels(service: Obj) -> dict[str, str]:
    labels = dict(service["metadata"].get("labels") or {})
    if _is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


def _selects(selector: dict[str, str], pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def desired_subsets(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The Endpoints subsets: one per distinct port set, ready and not-ready addresses sorted by IP."""
    spec = service.get("spec") or {}
    tolerate_unready = bool(spec.get("publishNotReadyAddresses"))
    service_ports = spec.get("ports") or []
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=tolerate_unready):
            continue
        ports = _pod_ports(pod, service_ports, named_always=False)
        if service_ports and not ports:
            continue  # none of the Service's ports exists on this pod
        if not service_ports and not _is_headless(service):
            continue  # only headless Services may have endpoints without ports
        address: Obj = {"ip": pod["status"]["podIP"], **_placement(pod, service)}
        _, ready, not_ready = groups.setdefault(_ports_key(ports), (ports, [], []))
        (ready if tolerate_unready or is_pod_ready(pod) else not_ready).append(address)
    subsets = []
    for key in sorted(groups):
        ports, ready, not_ready = groups[key]
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=_address_order)
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=_address_order)
        if ports:
            subset["ports"] = sorted(ports, key=lambda p: (p.get("name") or "", p["port"]))
        subsets.append(subset)
    return subsets


def desired_slice_groups(service: Obj, pods: Iterable[Obj]) -> list[tuple[list[Obj], list[Obj]]]:
    """(ports, endpoints) of every slice the Service needs: one group per distinct port set, in chunks."""
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    service_ports = spec.get("ports") or []
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        ports = _pod_ports(pod, service_ports, named_always=True)
        if service_ports and not ports:
            continue
        serving = publish_not_ready or is_pod_ready(pod)
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        endpoint: Obj = {
            "addresses": [pod["status"]["podIP"]],
            "conditions": {
                # Never ready while terminating, unless the Service publishes not-ready addresses.
                "ready": publish_not_ready or (serving and not terminating),
                "serving": serving,
                "terminating": terminating,
            },
            **_placement(pod, service),
        }
        groups.setdefault(_ports_key(ports), (ports, []))[1].append(endpoint)
    wanted = []
    for key in sorted(groups):
        ports, endpoints = groups[key]
        ports = sorted(ports, key=lambda p: (p["name"], p["port"]))
        endpoints.sort(key=lambda e: _address_order({"ip": e["addresses"][0], "targetRef": e["targetRef"]}))
        for start in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE):
            wanted.append((ports, endpoints[start : start + MAX_ENDPOINTS_PER_SLICE]))
    # A Service with no endpoints still has one (empty) slice, as upstream's placeholder.
    return wanted or [([], [])]


def _placement(pod: Obj, service: Obj) -> Obj:
    """What an address says about its pod: targetRef, nodeName and (for headless DNS) hostname."""
    placed: Obj = {"targetRef": _target_ref(pod)}
    if node := (pod.get("spec") or {}).get("nodeName"):
        placed["nodeName"] = node
    if hostname := _hostname(pod, service):
        placed["hostname"] = hostname
    return placed


def _address_order(address: Obj) -> tuple[tuple[int, ...], str]:
    try:
        numeric = tuple(int(part) for part in address["ip"].split("."))
    except ValueError:
        numeric = ()
    return numeric, address["targetRef"]["uid"]


class EndpointsController:
    """Both controllers in one pass per affected Service, so Endpoints and slices never disagree."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.services = cluster.registry.get("", "services")
        self.endpoints = cluster.registry.get("", "endpoints")
        self.slices = cluster.registry.get("discovery.k8s.io", "endpointslices")

    def reconcile(self, events: list[WatchEvent]) -> None:
        for namespace, name in sorted(self._affected(events)):
            try:
                self.sync(namespace, name)
            except ApiError as exc:
                log.info("endpoints of service %s/%s not updated: %s", namespace, name, exc.message)

    def _affected(self, events: list[WatchEvent]) -> set[tuple[str, str]]:
        """The Services a batch of changes concerns; every Service on the first pass (no events)."""
        store = self.cluster.store
        if not events:
            entries, _version = store.list(_SERVICES)
            return {(e.obj["metadata"]["namespace"], e.obj["metadata"]["name"]) for e in entries}
        affected: set[tuple[str, str]] = set()
        for event in events:
            if event.key in (_SERVICES, _ENDPOINTS):
                affected.add((event.namespace, event.entry.obj["metadata"]["name"]))
            elif event.key == _SLICES:
                service_name = (event.entry.obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
                if service_name:
                    affected.add((event.namespace, service_name))
            elif event.key == _PODS:
                pods = [event.entry.obj] + ([event.previous.obj] if event.previous else [])
                services, _version = store.list(_SERVICES, event.namespace)
                for service in services:
                    selector = (service.obj.get("spec") or {}).get("selector")
                    if selector and any(_selects(selector, pod) for pod in pods):
                        affected.add((event.namespace, service.obj["metadata"]["name"]))
        return affected

    def sync(self, namespace: str, name: str) -> None:
        """Bring the Service's Endpoints and EndpointSlices in line with its pods."""
        service = self.cluster.find(self.services, namespace, name)
        if service is None or service["metadata"].get("deletionTimestamp"):
            self._delete_endpoints(namespace, name)
            self._delete_slices(namespace, name, keep=())
            return
        selector = (service.get("spec") or {}).get("selector")
        if not selector:
            return  # the user manages this Service's Endpoints
        entries, _version = self.cluster.store.list(_PODS, namespace)
        pods = [entry.obj for entry in entries if _selects(selector, entry.obj)]
        self._sync_endpoints(service, desired_subsets(service, pods))
        if service["spec"].get("type") == "ExternalName":
            self._delete_slices(namespace, name, keep=())
        else:
            self._sync_slices(service, desired_slice_groups(service, pods))

    def _sync_endpoints(self, service: Obj, subsets: list[Obj]) -> None:
        metadata = service["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        labels = {**_labels(service), SKIP_MIRROR_LABEL: "true"}
        current = self.cluster.find(self.endpoints, namespace, name)
        if current is None:
            body: Obj = {"metadata": {"name": name, "labels": labels}}
            if subsets:
                body["subsets"] = subsets
            self.cluster.create(self.endpoints, "v1", namespace, body, user_agent="endpoint-controller")
            return
        if (current.get("subsets") or []) == subsets and (current["metadata"].get("labels") or {}) == labels:
            return
        current["metadata"]["labels"] = labels
        current.pop("subsets", None)
        if subsets:
            current["subsets"] = subsets
        self.cluster.replace(self.endpoints, "v1", namespace, name, current, user_agent="endpoint-controller")

    def _sync_slices(self, service: Obj, wanted: list[tuple[list[Obj], list[Obj]]]) -> None:
        """Reuse existing slices for the wanted groups (same ports first), create or delete the rest."""
        metadata = service["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        existing = self._slices_of(namespace, name)
        labels = {**_labels(service), SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY}
        owner = {
            "apiVersion": "v1",
            "kind": "Service",
            "name": name,
            "uid": metadata["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        unused = list(existing)
        kept: list[str] = []
        for ports, endpoints in wanted:
            current = next((s for s in unused if (s.get("ports") or []) == ports), None) or (
                unused[0] if unused else None
            )
            body: Obj = {
                "metadata": {"labels": labels, "ownerReferences": [owner]},
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": ports,
            }
            if current is None:
                body["metadata"]["generateName"] = f"{name}-"
                created = self.cluster.create(self.slices, "v1", namespace, body, user_agent="endpointslice-controller")
                kept.append(created.obj["metadata"]["name"])
                continue
            unused.remove(current)
            kept.append(current["metadata"]["name"])
            if _same_slice(current, body):
                continue
            current["metadata"]["labels"] = labels
            current["metadata"]["ownerReferences"] = [owner]
            current.update({"addressType": "IPv4", "endpoints": endpoints, "ports": ports})
            self.cluster.replace(
                self.slices,
                "v1",
                namespace,
                current["metadata"]["name"],
                current,
                user_agent="endpointslice-controller",
            )
        self._delete_slices(namespace, name, keep=kept)

    def _slices_of(self, namespace: str, name: str) -> list[Obj]:
        entries, _version = self.cluster.store.list(_SLICES, namespace)
        return [
            entry.obj
            for entry in entries
            if (entry.obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
            and (entry.obj["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
        ]

    def _delete_slices(self, namespace: str, name: str, *, keep: Iterable[str]) -> None:
        keep = set(keep)
        for stale in self._slices_of(namespace, name):
            if stale["metadata"]["name"] not in keep and not stale["metadata"].get("deletionTimestamp"):
                self.cluster.delete(self.slices, namespace, stale["metadata"]["name"])

    def _delete_endpoints(self, namespace: str, name: str) -> None:
        current = self.cluster.find(self.endpoints, namespace, name)
        # Endpoints the user wrote for a Service without selector are theirs; ours carry the skip-mirror label.
        if current is not None and (current["metadata"].get("labels") or {}).get(SKIP_MIRROR_LABEL) == "true":
            self.cluster.delete(self.endpoints, namespace, name)


def _same_slice(current: Obj, wanted: Obj) -> bool:
    metadata = current["metadata"]
    return (
        (current.get("endpoints") or []) == wanted["endpoints"]
        and (current.get("ports") or []) == wanted["ports"]
        and (metadata.get("labels") or {}) == wanted["metadata"]["labels"]
        and (metadata.get("ownerReferences") or []) == wanted["metadata"]["ownerReferences"]
    )
