"""Istio's sidecar injector, as the mutating admission step it is: decided once, when a pod is created.

Upstream, two webhooks select the pods istiod's injector sees: pods in a namespace labelled
`istio-injection=enabled` (or `istio.io/rev=default`) unless the pod's label
`sidecar.istio.io/inject` is "false", and pods labelled `sidecar.istio.io/inject=true` in a namespace
with neither label. The injector then honours the pod's `sidecar.istio.io/inject` label (or, older,
annotation) and skips hostNetwork pods and kube-system / kube-public. Because it runs at creation
only, pods that existed before their namespace was labelled stay outside the mesh until they are
re-created (`kubectl rollout restart`), as on a real cluster.

localcluster's proxy plays every sidecar, so the injector adds no container: it writes the labels
and annotations the real injector writes (telemetry names, the Prometheus scrape port, and
`sidecar.istio.io/status`, whose container lists are therefore empty), and the mesh routes a pod
whose status annotation is present.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from localcluster.api.resources import ResourceType
from localcluster.store import Store

NAMESPACE_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
INJECT = "sidecar.istio.io/inject"
SIDECAR_STATUS = "sidecar.istio.io/status"
#: The sidecar's merged Prometheus endpoint (pilot-agent's status port), as the injector announces it.
STATS_PORT = 15020
STATS_PATH = "/stats/prometheus"
REVISION = "default"
#: Namespaces the injector never touches (pilot's default `ignored` list).
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public"})
_POD_TEMPLATE_HASH = "pod-template-hash"


def has_sidecar(pod_annotations: Mapping[str, str]) -> bool:
    """Whether the pod was injected (its traffic goes through the mesh)."""
    return SIDECAR_STATUS in pod_annotations


def injection_required(pod: Mapping[str, Any], namespace_labels: Mapping[str, str]) -> bool:
    """Whether istiod's injector would inject this pod (webhook selection, then injectRequired)."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    pod_label = labels.get(INJECT)
    namespace_enabled = namespace_labels.get(NAMESPACE_LABEL) == "enabled" or (
        NAMESPACE_LABEL not in namespace_labels and namespace_labels.get(REVISION_LABEL) == REVISION
    )
    namespace_unlabelled = NAMESPACE_LABEL not in namespace_labels and REVISION_LABEL not in namespace_labels
    webhook_called = (namespace_enabled and pod_label != "false") or (namespace_unlabelled and pod_label == "true")
    if not webhook_called:
        return False
    if (pod.get("spec") or {}).get("hostNetwork"):
        return False
    if metadata.get("namespace") in IGNORED_NAMESPACES:
        return False
    choice = pod_label if pod_label is not None else annotations.get(INJECT, "")
    return choice != "false"  # "true", or anything else: the namespace's default policy, enabled


def workload_name(pod: Mapping[str, Any]) -> str:
    """The workload a pod belongs to, as Istio's telemetry names it (its Deployment, else its owner, else itself)."""
    metadata = pod.get("metadata") or {}
    owners = metadata.get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if owner is None:
        return str(metadata.get("name") or metadata.get("generateName", "").rstrip("-"))
    name = str(owner.get("name", ""))
    template_hash = (metadata.get("labels") or {}).get(_POD_TEMPLATE_HASH)
    if owner.get("kind") == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return name[: -len(template_hash) - 1]
    return name


def _canonical(value: str) -> str:
    return re.sub(r"^[-_.]+|[-_.]+$", "", value[:63])


def inject(pod: dict[str, Any]) -> None:
    """Write the injector's labels and annotations into `pod` (in place)."""
    metadata = pod.setdefault("metadata", {})
    labels = metadata.setdefault("labels", {})
    annotations = metadata.setdefault("annotations", {})
    containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name")]
    labels.setdefault("security.istio.io/tlsMode", "istio")
    labels.setdefault(
        "service.istio.io/canonical-name",
        _canonical(labels.get("app.kubernetes.io/name") or labels.get("app") or workload_name(pod)),
    )
    labels.setdefault(
        "service.istio.io/canonical-revision",
        labels.get("app.kubernetes.io/version") or labels.get("version") or "latest",
    )
    annotations.setdefault(REVISION_LABEL, REVISION)
    if containers:
        annotations.setdefault("kubectl.kubernetes.io/default-container", containers[0])
        annotations.setdefault("kubectl.kubernetes.io/default-logs-container", containers[0])
    annotations.setdefault("prometheus.io/scrape", "true")
    annotations.setdefault("prometheus.io/port", str(STATS_PORT))
    annotations.setdefault("prometheus.io/path", STATS_PATH)
    annotations[SIDECAR_STATUS] = json.dumps(
        {"initContainers": [], "containers": [], "volumes": [], "imagePullSecrets": None, "revision": REVISION},
        separators=(",", ":"),
    )


class SidecarInjector:
    """The mutating admission step: injects pods being created, reading their namespace's labels."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __call__(self, resource_type: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if old is not None or resource_type.key != "core/pods":
            return  # the webhook is registered for pod CREATE only
        namespace = self._store.get("core/namespaces", "", (obj.get("metadata") or {}).get("namespace", ""))
        labels = (namespace.obj["metadata"].get("labels") or {}) if namespace else {}
        if injection_required(obj, labels):
            inject(obj)
