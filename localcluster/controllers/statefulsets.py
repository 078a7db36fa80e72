"""apps/v1 StatefulSets, as kube-controller-manager's statefulset controller runs them.

Pods have stable names `<set>-<ordinal>` and identities: `hostname` is the pod's name and
`subdomain` the set's `serviceName`, so a headless Service of that name publishes
`<pod>.<service>` (see `network.hostnames`). Each `volumeClaimTemplates` entry gives every ordinal
its own claim `<template>-<set>-<ordinal>`, created before the pod and kept when the pod goes, so a
recreated pod finds its data again; the retention policy decides whether claims go when the set is
deleted (`whenDeleted`, through owner references) or scaled down (`whenScaled`). `OrderedReady`
(the default) creates pods one at a time in ordinal order, each once the previous one is Running
and Ready, and removes them from the highest ordinal down; `Parallel` does both at once.
`RollingUpdate` replaces pods whose `controller-revision-hash` is not the template's, from the
highest ordinal down to `partition`, one at a time; `OnDelete` waits for the pods to be deleted.
Revisions are named `<set>-<hash>` in the status as upstream, though no ControllerRevision objects
are kept (so `kubectl rollout undo` has no history to go back to).
"""

from __future__ import annotations

import json
from typing import Any

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.controllers.base import owner_reference, write_status
from localcluster.controllers.endpoints import is_pod_ready
from localcluster.controllers.workloads import (
    WorkloadController,
    is_pod_available,
    log,
    template_hash,
)
from localcluster.store import WatchEvent

Obj = dict[str, Any]
STATEFULSET_KEYS = frozenset({"apps/statefulsets", "core/pods", "core/persistentvolumeclaims"})
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"


def claim_name(template: Obj, set_name: str, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{set_name}-{ordinal}"


def _ordinal(pod: Obj, set_name: str) -> int | None:
    prefix, _, number = pod["metadata"]["name"].rpartition("-")
    return int(number) if prefix == set_name and number.isdigit() else None


def _healthy(pod: Obj) -> bool:
    """Running and Ready, not being deleted: what OrderedReady waits for."""
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and is_pod_ready(pod) and not pod["metadata"].get("deletionTimestamp")


class StatefulSetController(WorkloadController):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, "statefulset-controller")
        self.stateful_sets = cluster.registry.get("apps", "statefulsets")
        self.claims = cluster.registry.get("", "persistentvolumeclaims")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        self.sync_owners(self.stateful_sets, self.pods, self._sync)

    def _sync(self, stateful_set: Obj, owned: list[Obj]) -> None:
        name, spec = stateful_set["metadata"]["name"], stateful_set["spec"]
        revision = f"{name}-{template_hash(spec['template'])}"
        start = (spec.get("ordinals") or {}).get("start", 0)
        wanted = range(start, start + spec.get("replicas", 1))
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        by_ordinal = {ordinal: pod for pod in owned if (ordinal := _ordinal(pod, name)) is not None}
        blocked = False
        for ordinal in wanted:
            pod = by_ordinal.get(ordinal)
            if pod is None:
                if not blocked:
                    self._create(stateful_set, ordinal, revision)
                blocked = blocked or ordered
            elif (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                if not pod["metadata"].get("deletionTimestamp"):
                    self.delete_pod(stateful_set, pod)  # recreated under the same name on a later pass
                blocked = blocked or ordered
            elif not _healthy(pod):
                blocked = blocked or ordered
        condemned = sorted((o for o in by_ordinal if o not in wanted), reverse=True)
        terminating = any(pod["metadata"].get("deletionTimestamp") for pod in owned)
        for ordinal in condemned[: 1 if ordered else len(condemned)]:
            if not (ordered and (terminating or blocked)):
                self.delete_pod(stateful_set, by_ordinal[ordinal])
        if not blocked and not condemned and not terminating:
            self._roll(stateful_set, by_ordinal, wanted, revision)
        if (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenScaled") == "Delete":
            self._delete_scaled_down_claims(stateful_set, set(by_ordinal) | set(wanted))
        self._update_status(stateful_set, owned, revision)

    def _create(self, stateful_set: Obj, ordinal: int, revision: str) -> None:
        """The ordinal's claims (if missing), then its pod with the set's identity labels."""
        name, spec = stateful_set["metadata"]["name"], stateful_set["spec"]
        template = json.loads(json.dumps(spec["template"]))
        pod_spec: Obj = template.get("spec") or {}
        volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in self._template_names(spec)]
        for claim_template in spec.get("volumeClaimTemplates") or []:
            claim = claim_name(claim_template, name, ordinal)
            if not self._ensure_claim(stateful_set, claim_template, claim):
                return
            volumes.append({"name": claim_template["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}})
        if volumes:
            pod_spec["volumes"] = volumes
        pod_spec["hostname"] = f"{name}-{ordinal}"
        if spec.get("serviceName"):
            pod_spec["subdomain"] = spec["serviceName"]
        metadata = template.get("metadata") or {}
        labels = {
            **(metadata.get("labels") or {}),
            POD_NAME_LABEL: f"{name}-{ordinal}",
            POD_INDEX_LABEL: str(ordinal),
            REVISION_LABEL: revision,
        }
        pod_metadata = {"name": f"{name}-{ordinal}", "labels": labels, "annotations": metadata.get("annotations") or {}}
        self.create_pod(stateful_set, pod_metadata, pod_spec)

    @staticmethod
    def _template_names(spec: Obj) -> set[str]:
        return {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates") or []}

    def _ensure_claim(self, stateful_set: Obj, template: Obj, claim: str) -> bool:
        namespace = stateful_set["metadata"]["namespace"]
        if self.cluster.find(self.claims, namespace, claim) is not None:
            return True
        spec = stateful_set["spec"]
        labels = {
            **(template["metadata"].get("labels") or {}),
            **((spec.get("selector") or {}).get("matchLabels") or {}),
        }
        body: Obj = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "labels": labels, "annotations": template["metadata"].get("annotations") or {}},
            "spec": json.loads(json.dumps(template.get("spec") or {})),
        }
        if (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted") == "Delete":
            body["metadata"]["ownerReferences"] = [owner_reference(stateful_set)]
        try:
            self.cluster.create(self.claims, "v1", namespace, body, user_agent=self.agent)
        except ApiError as exc:
            self.cluster.record_event(
                stateful_set,
                "FailedCreate",
                f"create Claim {claim} for Pod in StatefulSet {stateful_set['metadata']['name']} failed error: "
                f"{exc.message}",
                event_type="Warning",
                component=self.agent,
            )
            return False
        self.cluster.record_event(
            stateful_set,
            "SuccessfulCreate",
            f"create Claim {claim} Pod in StatefulSet {stateful_set['metadata']['name']} success",
            component=self.agent,
        )
        return True

    def _delete_scaled_down_claims(self, stateful_set: Obj, kept: set[int]) -> None:
        """whenScaled: Delete: the claims of ordinals scaled away go once their pods have."""
        name, namespace = stateful_set["metadata"]["name"], stateful_set["metadata"]["namespace"]
        prefixes = [f"{t['metadata']['name']}-{name}-" for t in stateful_set["spec"].get("volumeClaimTemplates") or []]
        for entry in self.cluster.store.list(self.claims.key, namespace)[0]:
            claim = entry.obj["metadata"]["name"]
            ordinal = next((claim[len(p) :] for p in prefixes if claim.startswith(p)), "")
            if ordinal.isdigit() and int(ordinal) not in kept and not entry.obj["metadata"].get("deletionTimestamp"):
                try:
                    self.cluster.delete(self.claims, namespace, claim)
                except ApiError as exc:
                    log.info("statefulset-controller: claim %s not deleted: %s", claim, exc.message)

    def _roll(self, stateful_set: Obj, by_ordinal: dict[int, Obj], wanted: range, revision: str) -> None:
        """RollingUpdate: replace the highest outdated pod at or above the partition (one at a time)."""
        strategy = stateful_set["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        partition = (strategy.get("rollingUpdate") or {}).get("partition", 0)
        for ordinal in sorted(wanted, reverse=True):
            pod = by_ordinal.get(ordinal)
            if ordinal < wanted.start + partition or pod is None:
                continue
            if pod["metadata"].get("labels", {}).get(REVISION_LABEL) != revision:
                self.delete_pod(stateful_set, pod)
                return

    def _update_status(self, stateful_set: Obj, owned: list[Obj], revision: str) -> None:
        spec, previous = stateful_set["spec"], stateful_set.get("status") or {}
        present = [pod for pod in owned if not pod["metadata"].get("deletionTimestamp")]
        updated = [pod for pod in present if pod["metadata"].get("labels", {}).get(REVISION_LABEL) == revision]
        current_revision = previous.get("currentRevision") or revision
        if len(updated) == spec.get("replicas", 1) == len(present):
            current_revision = revision
        current = [p for p in present if p["metadata"].get("labels", {}).get(REVISION_LABEL) == current_revision]
        status: Obj = {
            "observedGeneration": stateful_set["metadata"].get("generation", 1),
            "replicas": len(present),
            "readyReplicas": sum(1 for pod in present if is_pod_ready(pod)),
            "currentReplicas": len(current),
            "updatedReplicas": len(updated),
            "availableReplicas": sum(1 for p in present if is_pod_available(p, spec.get("minReadySeconds", 0))),
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": previous.get("collisionCount", 0),
        }
        for field in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if not status[field]:
                del status[field]
        write_status(self.cluster, self.stateful_sets, stateful_set, status, self.agent)
