"""The sidecar injector's decision and what it writes, as istiod's webhooks and injector do."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcluster.network.mesh.injection import (
    SIDECAR_STATUS,
    has_sidecar,
    inject,
    injection_required,
    workload_name,
)


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
