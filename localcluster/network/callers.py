"""Who is calling: a pod's loopback address tells the proxy which pod it is.

Pods connect from their own address (127.x.y.z, the kubelet sees to it), so the source address of a
connection identifies the calling pod: its namespace (where its short names resolve, as cluster DNS's
per-pod search path would), its ServiceAccount (its identity in the mesh) and its labels and
annotations (is it in the mesh?). The same map tells the proxy which addresses are pods of this
cluster at all: it forwards to nothing else. The map follows the pod watch rather than scanning pods
on every request; an address it does not know yet is looked up in the store once, so a pod whose
event is still queued is not mistaken for a stranger.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from localcluster.network.routing import Caller
from localcluster.store import Store

_PODS = "core/pods"


class PodAddresses:
    """Pod IP → the pod as a `Caller`, kept current from the store's pod events."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pod_at: dict[str, Caller] = {}
        self._ip_of: dict[tuple[str, str], str] = {}
        #: Addresses the store said no pod has, until the next pod event (clients such as a notebook).
        self._strangers: set[str] = set()

    def caller_at(self, ip: str) -> Caller | None:
        """The pod whose address `ip` is, or None if no pod of this cluster has it."""
        caller = self._pod_at.get(ip)
        if caller is None and ip not in self._strangers:
            caller = self._look_up(ip)
        return caller

    def namespace_of(self, ip: str) -> str | None:
        caller = self.caller_at(ip)
        return None if caller is None else caller.namespace

    def is_pod_address(self, ip: str) -> bool:
        return self.caller_at(ip) is not None

    async def follow(self) -> None:
        """Load the pods, then apply every pod change until cancelled."""
        entries, version = self._store.list(_PODS)
        watch = self._store.watch(_PODS, None, version)
        try:
            for entry in entries:
                self._update(entry.obj)
            while True:
                event = await watch.queue.get()
                self._strangers.clear()
                if event.type == "DELETED":
                    self._forget(event.entry.obj)
                else:
                    self._update(event.entry.obj)
        finally:
            self._store.stop_watch(watch)

    def _look_up(self, ip: str) -> Caller | None:
        """The store's answer for an address the watch has not brought yet (rare: only just started pods)."""
        entries, _ = self._store.list(_PODS)
        for entry in entries:
            if (entry.obj.get("status") or {}).get("podIP") == ip:
                self._update(entry.obj)
                return self._pod_at.get(ip)
        self._strangers.add(ip)
        return None

    def _update(self, pod: dict[str, Any]) -> None:
        self._forget(pod)
        ip = (pod.get("status") or {}).get("podIP")
        if ip:
            key = _key(pod)
            self._ip_of[key] = ip
            self._pod_at[ip] = _caller(pod)

    def _forget(self, pod: dict[str, Any]) -> None:
        key = _key(pod)
        ip = self._ip_of.pop(key, None)
        # The address may already belong to a newer pod: only its own pod releases it.
        if ip is not None and (holder := self._pod_at.get(ip)) and (holder.namespace, holder.pod) == key:
            del self._pod_at[ip]


def _key(pod: dict[str, Any]) -> tuple[str, str]:
    return pod["metadata"]["namespace"], pod["metadata"]["name"]


def _caller(pod: dict[str, Any]) -> Caller:
    metadata = pod["metadata"]
    spec = pod.get("spec") or {}
    return Caller(
        namespace=metadata["namespace"],
        pod=metadata["name"],
        service_account=spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
        labels=MappingProxyType(dict(metadata.get("labels") or {})),
        annotations=MappingProxyType(dict(metadata.get("annotations") or {})),
    )
