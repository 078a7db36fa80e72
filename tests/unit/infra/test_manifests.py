"""CI renders every kustomization under infra/ with `kubectl kustomize` and validates every object of
the project (see tests/manifest_validation.py); and the validation itself fails on broken manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.settings import PROJECT_ROOT
from tests.manifest_validation import kustomizations, objects_of, plain_manifest_files, render, validate

KUSTOMIZATIONS = kustomizations()
PLAIN = plain_manifest_files()


def test_discovery_finds_the_bases_and_every_lab_overlay() -> None:
    found = {path.relative_to(PROJECT_ROOT).as_posix() for path in KUSTOMIZATIONS}
    overlays = {
        path.parent.relative_to(PROJECT_ROOT).as_posix()
        for path in (PROJECT_ROOT / "infra/overlays").glob("*/kustomization.yaml")
    }
    assert {"infra/base/monolith", "infra/overlays/01-monolith", "infra/overlays/02-microservices"} <= found
    assert overlays <= found
    assert any(path.name == "hello-pod.yaml" for path in PLAIN)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda path: path.relative_to(PROJECT_ROOT).as_posix())
def test_every_kustomization_renders_valid_objects(directory: Path) -> None:
    objects = render(directory)
    assert objects, f"{directory} renders nothing"
    for obj in objects:
        validate(obj)


@pytest.mark.parametrize("path", PLAIN, ids=lambda path: path.relative_to(PROJECT_ROOT).as_posix())
def test_every_plain_manifest_is_valid(path: Path) -> None:
    for obj in objects_of(path):
        validate(obj)


KNATIVE_SERVICE = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Service",
    "metadata": {"name": "stock"},
    "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/cloud-native-bookstore/workshop:latest"}]}}},
}
VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "stock"},
    "spec": {
        "hosts": ["stock"],
        "http": [{"route": [{"destination": {"host": "stock", "subset": "v1"}, "weight": 90}]}],
    },
}


def test_knative_and_istio_objects_are_checked_against_the_official_crds() -> None:
    validate(KNATIVE_SERVICE)
    validate(VIRTUAL_SERVICE)
    broken = {**KNATIVE_SERVICE, "spec": {"template": {"spec": {"containers": [{"image": 7}]}}}}
    with pytest.raises(AssertionError, match=r"Service 'stock'.*spec\.template\.spec\.containers\[0\]\.image"):
        validate(broken)
    unknown = {**VIRTUAL_SERVICE, "spec": {**VIRTUAL_SERVICE["spec"], "weights": [90, 10]}}
    with pytest.raises(AssertionError, match=r'unknown field "spec.weights"'):
        validate(unknown)


def test_core_objects_are_checked_strictly_and_unknown_kinds_refused() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    validate(pod)
    typo = {**pod, "spec": {"containers": [{"name": "c", "imagePullPolicy": "Always", "imagee": "x"}]}}
    with pytest.raises(AssertionError, match=r"Pod 'p': spec\.containers\.0: Additional properties"):
        validate(typo)
    with pytest.raises(AssertionError, match="nothing can validate it"):
        validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
