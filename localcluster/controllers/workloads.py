"""Deployments and ReplicaSets, as kube-controller-manager runs them.

A ReplicaSet keeps `spec.replicas` pods of its template alive (creating with generateName, deleting
the least useful first) and reports replicas, ready and available counts. A Deployment owns one
ReplicaSet per pod template, named `<deployment>-<pod-template-hash>`, and rolls from the old ones
to the new one within `maxSurge` and `maxUnavailable` (or all at once with `Recreate`), keeping
`revisionHistoryLimit` old ReplicaSets for `kubectl rollout undo`, with the status and conditions
`kubectl rollout status` reads.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from localcluster.api.cluster import Cluster, now
from localcluster.api.errors import ApiError
from localcluster.api.resources import ResourceType
from localcluster.api.selectors import selector_from_label_selector_object
from localcluster.controllers.base import owner_reference, replace_object, write_status
from localcluster.controllers.endpoints import is_pod_ready
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.workloads")

Obj = dict[str, Any]
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
WORKLOAD_KEYS = frozenset({"apps/deployments", "apps/replicasets", "core/pods"})


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A stable hash of a pod template, spelled as upstream's pod-template-hash (fnv-32a, safe alphabet)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    value = 0x811C9DC5
    for byte in data + (str(collision_count).encode() if collision_count else b""):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[int(digit) % len(_SAFE_ALPHABET)] for digit in str(value))


def controller_uid(obj: Obj) -> str | None:
    for reference in obj["metadata"].get("ownerReferences") or []:
        if reference.get("controller"):
            return reference.get("uid")
    return None


def seconds_since(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


def is_pod_available(pod: Obj, min_ready_seconds: int) -> bool:
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    ready = next(c for c in pod["status"]["conditions"] if c.get("type") == "Ready")
    return seconds_since(ready.get("lastTransitionTime")) >= min_ready_seconds


def is_active(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in (
        "Succeeded",
        "Failed",
    )


def _deletion_rank(pod: Obj) -> tuple[int, int, int, int, float]:
    """Which pods a scale-down removes first, as upstream's ActivePods ordering: unscheduled before
    scheduled, pending before running, not ready before ready, most restarts, then the youngest."""
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", "Pending"), 0)
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    age = seconds_since(pod["metadata"].get("creationTimestamp"))
    return (1 if pod["spec"].get("nodeName") else 0, phase_rank, 1 if is_pod_ready(pod) else 0, -restarts, age)


def set_condition(conditions: list[Obj], kind: str, status: str, reason: str, message: str) -> list[Obj]:
    """Replace one condition, keeping lastTransitionTime when its status did not change."""
    timestamp = now()
    previous = next((c for c in conditions if c.get("type") == kind), None)
    transition = previous["lastTransitionTime"] if previous and previous.get("status") == status else timestamp
    updated = previous and previous.get("reason") == reason and previous.get("status") == status
    condition = {
        "type": kind,
        "status": status,
        "lastUpdateTime": previous.get("lastUpdateTime", timestamp) if updated and previous else timestamp,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }
    return [c for c in conditions if c.get("type") != kind] + [condition]


class WorkloadController:
    """What the workload controllers share: typed access to their kinds, pod creation and deletion, status writes."""

    def __init__(self, cluster: Cluster, agent: str) -> None:
        self.cluster = cluster
        self.agent = agent
        self.deployments = cluster.registry.get("apps", "deployments")
        self.replica_sets = cluster.registry.get("apps", "replicasets")
        self.pods = cluster.registry.get("", "pods")

    def sync_owners(self, owners: ResourceType, children: ResourceType, sync: Callable[[Obj, list[Obj]], None]) -> None:
        """`sync(owner, the children it controls)` for every owner that is not being deleted."""
        children_by_owner: dict[str, list[Obj]] = {}
        for child in self._objects(children.key):
            uid = controller_uid(child)
            if uid:
                children_by_owner.setdefault(uid, []).append(child)
        for owner in self._objects(owners.key):
            if not owner["metadata"].get("deletionTimestamp"):
                sync(owner, children_by_owner.get(owner["metadata"]["uid"], []))

    def _objects(self, key: str) -> list[Obj]:
        entries, _version = self.cluster.store.list(key)
        return [entry.obj for entry in entries]

    def create_pod(self, owner: Obj, metadata: Obj, spec: Obj) -> Obj | None:
        """Create a pod `owner` controls, recording upstream's SuccessfulCreate/FailedCreate events."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**metadata, "ownerReferences": [owner_reference(owner)]},
            "spec": spec,
        }
        try:
            created = self.cluster.create(
                self.pods, "v1", owner["metadata"]["namespace"], pod, user_agent=self.agent
            ).obj
        except ApiError as exc:
            self.cluster.record_event(
                owner, "FailedCreate", f"Error creating: {exc.message}", event_type="Warning", component=self.agent
            )
            return None
        self.cluster.record_event(
            owner, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", component=self.agent
        )
        return created

    def delete_pod(self, owner: Obj, pod: Obj) -> bool:
        """Delete one of `owner`'s pods (this very pod: uid precondition), with the SuccessfulDelete event."""
        try:
            self.cluster.delete(
                self.pods,
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                preconditions={"uid": pod["metadata"]["uid"]},
            )
        except ApiError as exc:
            log.info("%s: pod %s not deleted: %s", self.agent, pod["metadata"]["name"], exc.message)
            return False
        self.cluster.record_event(
            owner, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", component=self.agent
        )
        return True


class ReplicaSetController(WorkloadController):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, "replicaset-controller")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        self.sync_owners(self.replica_sets, self.pods, self._sync)

    def _sync(self, replica_set: Obj, owned: list[Obj]) -> None:
        metadata, spec = replica_set["metadata"], replica_set["spec"]
        active = [pod for pod in owned if is_active(pod)]
        wanted = spec.get("replicas", 1)
        if len(active) < wanted:
            for _ in range(wanted - len(active)):
                self._create_pod(replica_set)
        elif len(active) > wanted:
            for pod in sorted(active, key=_deletion_rank)[: len(active) - wanted]:
                self.delete_pod(replica_set, pod)
        selector = selector_from_label_selector_object(spec.get("selector"))
        min_ready = spec.get("minReadySeconds", 0)
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(1 for p in active if selector.matches(p["metadata"].get("labels"))),
            "readyReplicas": sum(1 for p in active if is_pod_ready(p)),
            "availableReplicas": sum(1 for p in active if is_pod_available(p, min_ready)),
            "observedGeneration": metadata.get("generation", 1),
        }
        write_status(self.cluster, self.replica_sets, replica_set, status, self.agent)

    def _create_pod(self, replica_set: Obj) -> None:
        template = json.loads(json.dumps(replica_set["spec"]["template"]))
        metadata = template.get("metadata") or {}
        name = replica_set["metadata"]["name"]
        pod_metadata = {
            "generateName": f"{name}-",
            "labels": metadata.get("labels") or {},
            "annotations": metadata.get("annotations") or {},
        }
        self.create_pod(replica_set, pod_metadata, template.get("spec") or {})


def _resolve(value: int | str | None, total: int, *, round_up: bool) -> int:
    """An int-or-percent of `total`, as intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    percent = int(str(value).rstrip("%"))
    scaled = percent * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


class DeploymentController(WorkloadController):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, "deployment-controller")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        self.sync_owners(self.deployments, self.replica_sets, self._sync)

    def _sync(self, deployment: Obj, owned: list[Obj]) -> None:
        spec = deployment["spec"]
        template = spec["template"]
        pod_hash = template_hash(template, (deployment.get("status") or {}).get("collisionCount", 0))
        new = next((rs for rs in owned if _same_template(rs["spec"]["template"], template)), None)
        old = [rs for rs in owned if rs is not new]
        revision = max((int(rs["metadata"].get("annotations", {}).get(REVISION, 0)) for rs in owned), default=0)
        if spec.get("paused"):
            self._update_status(deployment, new, old)
            return
        if new is None:
            new = self._create_replica_set(deployment, pod_hash, revision + 1)
            if new is None:
                return
        elif int(new["metadata"].get("annotations", {}).get(REVISION, 0)) < revision:
            # A rollback to an old template makes its ReplicaSet the newest revision again.
            new = self._annotate_revision(new, revision + 1) or new
        self._annotate_deployment_revision(deployment, new)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            self._recreate(deployment, new, old)
        else:
            self._roll(deployment, new, old)
        self._clean_history(deployment, old)
        self._update_status(deployment, new, old)

    def _create_replica_set(self, deployment: Obj, pod_hash: str, revision: int) -> Obj | None:
        metadata, spec = deployment["metadata"], deployment["spec"]
        template = json.loads(json.dumps(spec["template"]))
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = json.loads(json.dumps(spec["selector"]))
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        surge = _resolve(
            (spec.get("strategy") or {}).get("rollingUpdate", {}).get("maxSurge"),
            spec.get("replicas", 1),
            round_up=True,
        )
        replica_set = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{metadata['name']}-{pod_hash}",
                "labels": {**(template["metadata"]["labels"])},
                "annotations": {
                    REVISION: str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(spec.get("replicas", 1)),
                    "deployment.kubernetes.io/max-replicas": str(spec.get("replicas", 1) + surge),
                },
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self.cluster.create(
                self.replica_sets, "v1", metadata["namespace"], replica_set, user_agent=self.agent
            ).obj
        except ApiError as exc:
            log.info("deployment-controller: replica set for %s not created: %s", metadata["name"], exc.message)
            return None
        return created

    def _annotate_revision(self, replica_set: Obj, revision: int) -> Obj | None:
        updated = json.loads(json.dumps(replica_set))
        updated["metadata"].setdefault("annotations", {})[REVISION] = str(revision)
        return replace_object(self.cluster, self.replica_sets, updated, self.agent)

    def _annotate_deployment_revision(self, deployment: Obj, new: Obj) -> None:
        revision = new["metadata"].get("annotations", {}).get(REVISION)
        if deployment["metadata"].get("annotations", {}).get(REVISION) != revision:
            updated = json.loads(json.dumps(deployment))
            updated["metadata"].setdefault("annotations", {})[REVISION] = revision
            if replace_object(self.cluster, self.deployments, updated, self.agent) is not None:
                deployment["metadata"] = updated["metadata"]

    def _scale(self, deployment: Obj, replica_set: Obj, replicas: int) -> None:
        current = replica_set["spec"].get("replicas", 0)
        if current == replicas:
            return
        updated = json.loads(json.dumps(replica_set))
        updated["spec"]["replicas"] = replicas
        annotations = updated["metadata"].setdefault("annotations", {})
        annotations["deployment.kubernetes.io/desired-replicas"] = str(deployment["spec"].get("replicas", 1))
        if replace_object(self.cluster, self.replica_sets, updated, self.agent) is not None:
            replica_set["spec"]["replicas"] = replicas
            direction = "up" if replicas > current else "down"
            self.cluster.record_event(
                deployment,
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {replica_set['metadata']['name']} from {current} to {replicas}",
                component=self.agent,
            )

    def _recreate(self, deployment: Obj, new: Obj, old: list[Obj]) -> None:
        for replica_set in old:
            self._scale(deployment, replica_set, 0)
        if all((rs.get("status") or {}).get("replicas", 0) == 0 for rs in old):
            self._scale(deployment, new, deployment["spec"].get("replicas", 1))

    def _roll(self, deployment: Obj, new: Obj, old: list[Obj]) -> None:
        spec = deployment["spec"]
        replicas = spec.get("replicas", 1)
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        surge = _resolve(rolling.get("maxSurge", "25%"), replicas, round_up=True)
        unavailable = _resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        # Scale the new replica set up as far as the surge allows.
        total = sum(rs["spec"].get("replicas", 0) for rs in [new, *old])
        new_replicas = new["spec"].get("replicas", 0)
        if new_replicas > replicas:
            self._scale(deployment, new, replicas)
        elif new_replicas < replicas:
            room = replicas + surge - total
            if room > 0:
                self._scale(deployment, new, min(replicas, new_replicas + room))
        # Scale old ones down as far as availability allows, oldest first.
        available = sum((rs.get("status") or {}).get("availableReplicas", 0) for rs in [new, *old])
        min_available = replicas - unavailable
        removable = available - min_available
        # Old pods that are not available cost no availability: they can always go.
        for replica_set in sorted(old, key=lambda rs: rs["metadata"].get("creationTimestamp", "")):
            current = replica_set["spec"].get("replicas", 0)
            if current == 0:
                continue
            unavailable_here = current - (replica_set.get("status") or {}).get("availableReplicas", 0)
            cut = min(current, max(0, removable) + max(0, unavailable_here))
            if cut > 0:
                self._scale(deployment, replica_set, current - cut)
                removable -= max(0, cut - max(0, unavailable_here))

    def _clean_history(self, deployment: Obj, old: list[Obj]) -> None:
        limit = deployment["spec"].get("revisionHistoryLimit", 10)
        idle = [rs for rs in old if rs["spec"].get("replicas", 0) == 0 and not (rs.get("status") or {}).get("replicas")]
        idle.sort(key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, 0)))
        for replica_set in idle[: max(0, len(idle) - limit)]:
            try:
                self.cluster.delete(
                    self.replica_sets, replica_set["metadata"]["namespace"], replica_set["metadata"]["name"]
                )
            except ApiError as exc:
                log.info("deployment-controller: old replica set not deleted: %s", exc.message)

    def _update_status(self, deployment: Obj, new: Obj | None, old: list[Obj]) -> None:
        spec = deployment["spec"]
        everything = [rs for rs in [new, *old] if rs is not None]

        def total(field: str) -> int:
            return sum((rs.get("status") or {}).get(field, 0) for rs in everything)

        replicas = spec.get("replicas", 1)
        updated = (new.get("status") or {}).get("replicas", 0) if new else 0
        available = total("availableReplicas")
        status: Obj = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": total("replicas"),
            "updatedReplicas": updated,
            "readyReplicas": total("readyReplicas"),
            "availableReplicas": available,
        }
        if total("replicas") - available > 0:
            status["unavailableReplicas"] = total("replicas") - available
        for field in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            if status[field] == 0 and field != "replicas":
                del status[field]
        previous = deployment.get("status") or {}
        if "collisionCount" in previous:
            status["collisionCount"] = previous["collisionCount"]
        conditions = list(previous.get("conditions") or [])
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        if available >= replicas - max_unavailable:
            conditions = set_condition(
                conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
            )
        else:
            conditions = set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        name = new["metadata"]["name"] if new else ""
        complete = new is not None and updated == replicas and total("replicas") == replicas and available >= replicas
        progressing = next((c for c in conditions if c.get("type") == "Progressing"), None)
        if complete:
            conditions = set_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{name}" has successfully progressed.',
            )
        elif progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            pass
        elif (
            progressing
            and progressing["status"] == "True"
            and seconds_since(progressing.get("lastUpdateTime")) > spec.get("progressDeadlineSeconds", 600)
            and progressing.get("reason") != "NewReplicaSetAvailable"
        ):
            conditions = set_condition(
                conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
            )
        elif (
            not progressing
            or progressing.get("reason") == "NewReplicaSetAvailable"
            or progressing["message"] != f'ReplicaSet "{name}" is progressing.'
        ):
            conditions = set_condition(
                conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.'
            )
        status["conditions"] = sorted(conditions, key=lambda c: c["type"])
        write_status(self.cluster, self.deployments, deployment, status, self.agent)


def _same_template(replica_set_template: Obj, deployment_template: Obj) -> bool:
    """Equal but for the pod-template-hash label the controller adds (as upstream's EqualIgnoreHash)."""
    stripped = json.loads(json.dumps(replica_set_template))
    labels = stripped.get("metadata", {}).get("labels", {})
    labels.pop(HASH_LABEL, None)
    return stripped == deployment_template
