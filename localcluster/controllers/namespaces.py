"""Namespace lifecycle: a deleted namespace empties itself, then goes; every namespace has a
`default` ServiceAccount (what kube-controller-manager's namespace and serviceaccount controllers do).
"""

from __future__ import annotations

import logging

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.namespaces")


class NamespaceController:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.namespaces = cluster.registry.get("", "namespaces")
        self.service_accounts = cluster.registry.get("", "serviceaccounts")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        entries, _version = self.cluster.store.list(self.namespaces.key)
        for entry in entries:
            metadata = entry.obj["metadata"]
            if metadata.get("deletionTimestamp"):
                self._empty(metadata["name"])
            elif self.cluster.find(self.service_accounts, metadata["name"], "default") is None:
                self.cluster.create(
                    self.service_accounts,
                    "v1",
                    metadata["name"],
                    {"metadata": {"name": "default"}},
                    user_agent="serviceaccount-controller",
                )

    def _empty(self, namespace: str) -> None:
        """Delete everything in the namespace; once nothing is left, remove the namespace."""
        remaining = 0
        for resource_type in self.cluster.registry:
            if not resource_type.namespaced:
                continue
            entries, _version = self.cluster.store.list(resource_type.key, namespace)
            for entry in entries:
                remaining += 1
                if entry.obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    self.cluster.delete(resource_type, namespace, entry.obj["metadata"]["name"])
                except ApiError as exc:
                    log.info("namespace %s: could not delete %s: %s", namespace, resource_type.plural, exc.message)
        if remaining == 0:
            self.cluster.finish_deletion(self.namespaces, "", namespace)
