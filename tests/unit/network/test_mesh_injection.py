"""The sidecar injector's decision and what it writes, as istiod's webhooks and injector do."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcluster.api.cluster import Cluster
from localcluster.network.mesh.injection import (
    SIDECAR_STATUS,
    SidecarInjector,
    has_sidecar,
    inject,
    injection_required,
    workload_name,
)

from .conftest import NAMESPACE, create_pod


def pod(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "p", "labels": labels or {}, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "app"}], **spec},
    }


ENABLED = {"istio-injection": "enabled"}


@pytest.mark.parametrize(
    ("namespace", "labels", "annotations", "expected"),
    [
        (ENABLED, {}, {}, True),
        ({}, {}, {}, False),
        ({"istio-injection": "disabled"}, {}, {}, False),
        ({"istio.io/rev": "default"}, {}, {}, True),
        (ENABLED, {"sidecar.istio.io/inject": "false"}, {}, False),
        (ENABLED, {}, {"sidecar.istio.io/inject": "false"}, False),
        (ENABLED, {"sidecar.istio.io/inject": "true"}, {"sidecar.istio.io/inject": "false"}, True),  # label wins
        ({}, {"sidecar.istio.io/inject": "true"}, {}, True),  # the object webhook
        ({"istio-injection": "disabled"}, {"sidecar.istio.io/inject": "true"}, {}, False),
        ({}, {}, {"sidecar.istio.io/inject": "true"}, False),  # annotations do not select the webhook
    ],
)
def test_injection_required(
    namespace: dict[str, str], labels: dict[str, str], annotations: dict[str, str], expected: bool
) -> None:
    assert injection_required(pod(labels, annotations), namespace) is expected


def test_host_network_and_system_namespaces_are_never_injected() -> None:
    assert not injection_required(pod(hostNetwork=True), ENABLED)
    system = pod()
    system["metadata"]["namespace"] = "kube-system"
    assert not injection_required(system, ENABLED)


def test_inject_writes_the_injectors_labels_and_annotations() -> None:
    injected = pod({"app": "reviews", "version": "v2"})
    inject(injected)
    labels, annotations = injected["metadata"]["labels"], injected["metadata"]["annotations"]
    assert labels["service.istio.io/canonical-name"] == "reviews"
    assert labels["service.istio.io/canonical-revision"] == "v2"
    assert labels["security.istio.io/tlsMode"] == "istio"
    assert annotations["prometheus.io/port"] == "15020"
    assert annotations["kubectl.kubernetes.io/default-container"] == "app"
    assert json.loads(annotations[SIDECAR_STATUS])["revision"] == "default"
    assert has_sidecar(annotations)
    assert injected["spec"]["containers"] == [{"name": "app"}]  # the proxy plays the sidecar


def test_workload_name_is_the_deployment() -> None:
    owned = pod({"pod-template-hash": "6d4f8b7c9"})
    owned["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "storefront-v2-6d4f8b7c9", "controller": True}
    ]
    assert workload_name(owned) == "storefront-v2"
    assert workload_name(pod()) == "p"


def test_admission_injects_pods_created_after_the_namespace_label_only(cluster: Cluster) -> None:
    cluster.mutating_admission.append(SidecarInjector(cluster.store))
    before = create_pod(cluster, "before", labels={"app": "web"})
    namespaces = cluster.registry.get("", "namespaces")
    cluster.patch(
        namespaces,
        "v1",
        "",
        NAMESPACE,
        "application/merge-patch+json",
        json.dumps({"metadata": {"labels": {"istio-injection": "enabled"}}}).encode(),
    )
    after = create_pod(cluster, "after", labels={"app": "web", "version": "v2"})
    opted_out = create_pod(cluster, "opted-out", labels={"app": "web", "sidecar.istio.io/inject": "false"})
    assert has_sidecar(after["metadata"]["annotations"])
    assert after["metadata"]["labels"]["service.istio.io/canonical-revision"] == "v2"
    assert not has_sidecar(opted_out["metadata"].get("annotations") or {})
    # The injector runs on creation only: the older pod stays outside the mesh, even when it is updated.
    pods = cluster.registry.get("", "pods")
    updated = cluster.patch(
        pods,
        "v1",
        NAMESPACE,
        "before",
        "application/merge-patch+json",
        json.dumps({"metadata": {"labels": {"touched": "yes"}}}).encode(),
    ).obj
    assert not has_sidecar(before["metadata"].get("annotations") or {})
    assert not has_sidecar(updated["metadata"].get("annotations") or {})


def test_istio_system_exists_from_the_start(cluster: Cluster) -> None:
    namespaces = cluster.registry.get("", "namespaces")
    assert cluster.find(namespaces, "", "istio-system") is not None
