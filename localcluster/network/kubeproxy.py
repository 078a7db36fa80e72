"""kube-proxy's and cluster DNS's part for pods: the rules file the pods' network shim follows.

On a real node no process stands between two pods: cluster DNS turns `stock` into the Service's
cluster IP, and kube-proxy's kernel rules send each new connection to that IP to one of the
Service's Ready endpoints, chosen at random. localcluster's pods have no network namespace, so their
Python runtime's shim (`kubelet/shim/sitecustomize.py`) plays the kernel's part, reading the rules
this module writes: which names are Services (and their cluster IPs), and for each cluster IP and
port, the Ready endpoints a connection may go to directly.

A Service gets no direct route, and its connections go to the service proxy (which routes by the
request's Host as before), when what a real cluster does for it is more than the kernel's rules:

- its endpoints include a pod with an Istio sidecar (that sidecar's inbound policies and telemetry
  are the proxy's), or a Knative revision's pod (the activator counts its requests for the
  autoscaler), or it is a Knative Route's placeholder Service;
- it has no Ready endpoint (the proxy answers 503 and says why, where the kernel would refuse).

A pod with a sidecar sends everything to the proxy (Envoy intercepts its outbound traffic), and so
does a pod the rules do not list yet, so a pod is never outside the mesh by a race. Names the rules
do not know (Knative hosts, pod hostnames, anything else) go to the proxy too. The file is replaced
atomically whenever Services, Endpoints or Pods change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from localcluster.knative.keys import REVISION_LABEL, ROUTE_LABEL
from localcluster.network.mesh.injection import has_sidecar
from localcluster.network.services import ready_addresses, service_port_name
from localcluster.store import Store, WatchEvent

log = logging.getLogger("localcluster.kubeproxy")

_SERVICES = "core/services"
_ENDPOINTS = "core/endpoints"
_PODS = "core/pods"
WATCHED = frozenset({_SERVICES, _ENDPOINTS, _PODS})
#: The file's format: the shim ignores a file of another version (and sends everything to the proxy).
FORMAT = 1


def compute_rules(store: Store, proxy: tuple[str, int]) -> dict[str, Any]:
    """The rules for the store's current Services, Endpoints and Pods (see the module's docstring).

    ``pods``: every pod with an address, `namespace/name` -> true if it has a sidecar;
    ``services``: `namespace/name` -> cluster IP, for every Service that has one;
    ``routes``: cluster IP -> port -> the `[ip, port]` endpoints a connection may go to directly.
    """
    pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in _objects(store, _PODS)}
    services: dict[str, str] = {}
    routes: dict[str, dict[str, list[list[Any]]]] = {}
    for service in _objects(store, _SERVICES):
        metadata, spec = service["metadata"], service.get("spec") or {}
        cluster_ip = spec.get("clusterIP")
        if spec.get("type") == "ExternalName" or not cluster_ip or cluster_ip == "None":
            continue
        key = f"{metadata['namespace']}/{metadata['name']}"
        services[key] = cluster_ip
        if ROUTE_LABEL in (metadata.get("labels") or {}):
            continue
        endpoints = store.get(_ENDPOINTS, metadata["namespace"], metadata["name"])
        if endpoints is None or not _plain_pods_only(endpoints.obj, pods):
            continue
        ports = {}
        for service_port in spec.get("ports") or []:
            if service_port.get("protocol", "TCP") != "TCP":
                continue
            ready = ready_addresses(endpoints.obj, service_port_name(service, service_port["port"]))
            if ready:
                ports[str(service_port["port"])] = [[ip, port] for ip, port in ready]
        if ports:
            routes[cluster_ip] = ports
    return {
        "format": FORMAT,
        "proxy": list(proxy),
        "pods": {key: has_sidecar(pod["metadata"].get("annotations") or {}) for key, pod in pods.items() if _ip(pod)},
        "services": services,
        "routes": routes,
    }


def _objects(store: Store, key: str) -> Iterator[dict[str, Any]]:
    entries, _version = store.list(key)
    return (entry.obj for entry in entries)


def _ip(pod: dict[str, Any]) -> str | None:
    return (pod.get("status") or {}).get("podIP")


def _plain_pods_only(endpoints: dict[str, Any], pods: dict[str, dict[str, Any]]) -> bool:
    """Every address is a pod of this cluster with neither a sidecar nor a Knative revision behind it."""
    for subset in endpoints.get("subsets") or []:
        for address in [*(subset.get("addresses") or []), *(subset.get("notReadyAddresses") or [])]:
            target = address.get("targetRef") or {}
            pod = pods.get(f"{target.get('namespace')}/{target.get('name')}")
            if pod is None or _ip(pod) != address.get("ip"):
                return False
            metadata = pod["metadata"]
            if has_sidecar(metadata.get("annotations") or {}) or REVISION_LABEL in (metadata.get("labels") or {}):
                return False
    return True


class ServiceRules:
    """Keeps the rules file at ``path`` current for the proxy listening at ``proxy``; `follow()` runs it."""

    def __init__(self, store: Store, path: Path, proxy: tuple[str, int]) -> None:
        self.store = store
        self.path = path
        self.proxy = proxy
        self._written: dict[str, Any] | None = None

    def write(self) -> None:
        """Replace the file with the current rules (atomically: a pod reads the old file or the new one)."""
        rules = compute_rules(self.store, self.proxy)
        if rules == self._written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".rules-", dir=self.path.parent)
        try:
            with os.fdopen(descriptor, "w") as file:
                json.dump(rules, file, separators=(",", ":"))
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._written = rules

    async def follow(self) -> None:
        """Write the rules now, then after every batch of changes to Services, Endpoints or Pods, until cancelled."""
        watch = self.store.watch(None, None, self.store.resource_version)
        try:
            while True:
                try:
                    self.write()
                except Exception:  # a full disk must not stop the rules for good
                    log.exception("could not write the service rules to %s; retrying on the next change", self.path)
                await _next_batch(watch.queue)
        finally:
            self.store.stop_watch(watch)


async def _next_batch(queue: asyncio.Queue[WatchEvent]) -> None:
    """Wait for a change to a watched kind; the events queued with it are taken too (one write for a burst)."""
    while True:
        batch = [await queue.get()]
        while not queue.empty():
            batch.append(queue.get_nowait())
        if any(event.key in WATCHED for event in batch):
            return
