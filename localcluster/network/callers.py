"""Who is calling: a pod's loopback address tells the proxy which namespace its short names mean.

Pods connect from their own address (127.x.y.z, the kubelet sees to it), so the source address of a
connection identifies the calling pod as cluster DNS's per-pod search path would. The map follows
the pod watch rather than scanning pods on every request.
"""

from __future__ import annotations

from typing import Any

from localcluster.store import Store

_PODS = "core/pods"


class PodAddresses:
    """Pod IP → the pod's namespace, kept current from the store's pod events."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pod_at: dict[str, tuple[str, str]] = {}
        self._ip_of: dict[tuple[str, str], str] = {}

    def namespace_of(self, ip: str) -> str | None:
        pod = self._pod_at.get(ip)
        return None if pod is None else pod[0]

    async def follow(self) -> None:
        """Load the pods, then apply every pod change until cancelled."""
        entries, version = self._store.list(_PODS)
        watch = self._store.watch(_PODS, None, version)
        try:
            for entry in entries:
                self._update(entry.obj)
            while True:
                event = await watch.queue.get()
                if event.type == "DELETED":
                    self._forget(event.entry.obj)
                else:
                    self._update(event.entry.obj)
        finally:
            self._store.stop_watch(watch)

    def _update(self, pod: dict[str, Any]) -> None:
        self._forget(pod)
        ip = (pod.get("status") or {}).get("podIP")
        if ip:
            key = _key(pod)
            self._ip_of[key] = ip
            self._pod_at[ip] = key

    def _forget(self, pod: dict[str, Any]) -> None:
        key = _key(pod)
        ip = self._ip_of.pop(key, None)
        # The address may already belong to a newer pod: only its own pod releases it.
        if ip is not None and self._pod_at.get(ip) == key:
            del self._pod_at[ip]


def _key(pod: dict[str, Any]) -> tuple[str, str]:
    return pod["metadata"]["namespace"], pod["metadata"]["name"]
