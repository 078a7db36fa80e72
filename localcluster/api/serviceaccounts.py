"""The ServiceAccount admission plugin: every new pod runs as a ServiceAccount and gets its API credentials.

As upstream's plugin/pkg/admission/serviceaccount: a pod without `serviceAccountName` runs as
`default`; the ServiceAccount must exist (else 403 `error looking up service account`); unless the
pod or the ServiceAccount says `automountServiceAccountToken: false`, the pod gets a projected volume
`kube-api-access-<5 letters>` (a bound token the kubelet requests, `ca.crt` from the namespace's
`kube-root-ca.crt` ConfigMap, and the namespace from the downward API) mounted read-only at
`/var/run/secrets/kubernetes.io/serviceaccount` in every container that has nothing mounted there.
"""

from __future__ import annotations

import secrets
from typing import Any

from localcluster.api.authentication import WARN_ONLY_EXPIRATION_SECONDS
from localcluster.api.authorization import forbidden_for
from localcluster.api.cluster import Cluster
from localcluster.api.resources import ResourceType

TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
_VOLUME_PREFIX = "kube-api-access-"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's utilrand alphabet


def token_volume_source() -> dict[str, Any]:
    """Upstream's `TokenVolumeSource()`, defaultMode included."""
    return {
        "defaultMode": 0o644,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": WARN_ONLY_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {
                "downwardAPI": {
                    "items": [
                        {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                    ]
                }
            },
        ],
    }


class ServiceAccountAdmission:
    """A mutating admission step of the Cluster pipeline, for pods being created."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.service_accounts = cluster.registry.get("", "serviceaccounts")

    def __call__(self, resource_type: ResourceType, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
        if old is not None or resource_type.group or resource_type.kind != "Pod":
            return
        metadata, spec = pod["metadata"], pod.setdefault("spec", {})
        namespace = metadata.get("namespace", "")
        name = spec.get("serviceAccountName") or "default"
        account = self.cluster.find(self.service_accounts, namespace, name)
        if account is None:
            raise forbidden_for(
                "pods",
                "",
                metadata.get("name", ""),
                f'error looking up service account {namespace}/{name}: serviceaccount "{name}" not found',
            )
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = account.get("automountServiceAccountToken")
        if automount is False:
            return
        _mount_token(spec)


def _mount_token(spec: dict[str, Any]) -> None:
    volumes = spec.setdefault("volumes", [])
    existing = {volume.get("name") for volume in volumes}
    volume_name = ""
    while not volume_name or volume_name in existing:
        volume_name = _VOLUME_PREFIX + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
    needed = False
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            mounts = container.setdefault("volumeMounts", [])
            if any(mount.get("mountPath") == TOKEN_MOUNT_PATH for mount in mounts):
                continue
            mounts.append({"name": volume_name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH})
            needed = True
    if needed:
        volumes.append({"name": volume_name, "projected": token_volume_source()})
