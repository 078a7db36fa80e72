"""The root CA publisher: every namespace has a `kube-root-ca.crt` ConfigMap with the API's CA bundle.

As kube-controller-manager's root-ca-cert-publisher: pods verify the API server with it (the
ServiceAccount token volume projects its `ca.crt`), and an edited copy is put back.
"""

from __future__ import annotations

import logging

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.api.serviceaccounts import ROOT_CA_CONFIGMAP
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.root-ca")

#: The kinds whose changes can leave a namespace without its bundle.
ROOT_CA_KEYS = frozenset({"core/namespaces", "core/configmaps"})
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the "
    "internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes "
    "clusters."
)


class RootCAPublisher:
    def __init__(self, cluster: Cluster, ca_bundle: str) -> None:
        self.cluster = cluster
        self.data = {"ca.crt": ca_bundle}
        self.namespaces = cluster.registry.get("", "namespaces")
        self.configmaps = cluster.registry.get("", "configmaps")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        for entry in self.cluster.store.list(self.namespaces.key)[0]:
            metadata = entry.obj["metadata"]
            if metadata.get("deletionTimestamp"):
                continue
            namespace = metadata["name"]
            current = self.cluster.find(self.configmaps, namespace, ROOT_CA_CONFIGMAP)
            try:
                if current is None:
                    body = {
                        "metadata": {
                            "name": ROOT_CA_CONFIGMAP,
                            "annotations": {"kubernetes.io/description": DESCRIPTION},
                        },
                        "data": self.data,
                    }
                    self.cluster.create(self.configmaps, "v1", namespace, body, user_agent="root-ca-cert-publisher")
                elif current.get("data") != self.data:
                    current["data"] = self.data
                    self.cluster.replace(
                        self.configmaps,
                        "v1",
                        namespace,
                        ROOT_CA_CONFIGMAP,
                        current,
                        user_agent="root-ca-cert-publisher",
                    )
            except ApiError as exc:
                log.info("namespace %s: %s not published: %s", namespace, ROOT_CA_CONFIGMAP, exc.message)
