"""Owner-reference garbage collection, as kube-controller-manager's garbagecollector does it.

Background: a dependent whose owners are all gone is deleted. Foreground: an owner being deleted
with the `foregroundDeletion` finalizer has its dependents deleted first and goes once no dependent
with `blockOwnerDeletion` is left. Orphan: an owner with the `orphan` finalizer has itself removed
from its dependents' ownerReferences, then goes.
"""

from __future__ import annotations

import logging
from typing import Any

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.api.resources import ResourceType
from localcluster.store import Entry, WatchEvent

log = logging.getLogger("localcluster.gc")


class GarbageCollector:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._types = {resource_type.key: resource_type for resource_type in cluster.registry}

    def reconcile(self, _events: list[WatchEvent]) -> None:
        entries = list(self.cluster.store.all_entries())
        by_uid = {entry.obj["metadata"].get("uid"): (key, entry) for key, entry in entries}
        dependents: dict[str, list[tuple[str, Entry]]] = {}
        for key, entry in entries:
            for reference in entry.obj["metadata"].get("ownerReferences") or []:
                dependents.setdefault(reference.get("uid"), []).append((key, entry))
        for key, entry in entries:
            metadata = entry.obj["metadata"]
            finalizers = metadata.get("finalizers") or []
            if not metadata.get("deletionTimestamp"):
                continue
            if "orphan" in finalizers:
                self._orphan(key, entry, dependents.get(metadata["uid"], []))
            elif "foregroundDeletion" in finalizers:
                self._foreground(key, entry, dependents.get(metadata["uid"], []))
        for key, entry in entries:
            references = entry.obj["metadata"].get("ownerReferences") or []
            if references and all(self._owner_absent(reference, by_uid) for reference in references):
                self._delete(key, entry, propagation="Background")

    @staticmethod
    def _owner_absent(reference: dict[str, Any], by_uid: dict[str, tuple[str, Entry]]) -> bool:
        return reference.get("uid") not in by_uid

    def _orphan(self, key: str, owner: Entry, dependents: list[tuple[str, Entry]]) -> None:
        uid = owner.obj["metadata"]["uid"]
        for dependent_key, dependent in dependents:
            obj = self._fresh(dependent_key, dependent)
            if obj is None:
                continue
            obj["metadata"]["ownerReferences"] = [
                r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
            ]
            if not obj["metadata"]["ownerReferences"]:
                del obj["metadata"]["ownerReferences"]
            self._write(dependent_key, obj)
        self._remove_finalizer(key, owner, "orphan")

    def _foreground(self, key: str, owner: Entry, dependents: list[tuple[str, Entry]]) -> None:
        blocking = False
        for dependent_key, dependent in dependents:
            references = dependent.obj["metadata"].get("ownerReferences") or []
            blocks = any(
                r.get("uid") == owner.obj["metadata"]["uid"] and r.get("blockOwnerDeletion") for r in references
            )
            blocking = blocking or blocks
            if not dependent.obj["metadata"].get("deletionTimestamp"):
                self._delete(dependent_key, dependent, propagation="Foreground" if blocks else "Background")
        if not blocking:
            self._remove_finalizer(key, owner, "foregroundDeletion")

    def _fresh(self, key: str, entry: Entry) -> dict[str, Any] | None:
        metadata = entry.obj["metadata"]
        return self.cluster.find(self._types[key], metadata.get("namespace", ""), metadata["name"])

    def _remove_finalizer(self, key: str, entry: Entry, finalizer: str) -> None:
        obj = self._fresh(key, entry)
        if obj is None:
            return
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        self._write(key, obj)

    def _write(self, key: str, obj: dict[str, Any]) -> None:
        resource_type: ResourceType = self._types[key]
        metadata = obj["metadata"]
        try:
            self.cluster.replace(
                resource_type,
                resource_type.storage_version,
                metadata.get("namespace", ""),
                metadata["name"],
                obj,
                user_agent="generic-garbage-collector",
            )
        except ApiError as exc:
            log.info("garbage collector: %s %s not updated: %s", key, metadata["name"], exc.message)

    def _delete(self, key: str, entry: Entry, *, propagation: str) -> None:
        metadata = entry.obj["metadata"]
        try:
            self.cluster.delete(
                self._types[key],
                metadata.get("namespace", ""),
                metadata["name"],
                propagation=propagation,
                preconditions={"uid": metadata["uid"]},
            )
        except ApiError as exc:
            log.info("garbage collector: %s %s not deleted: %s", key, metadata["name"], exc.message)
