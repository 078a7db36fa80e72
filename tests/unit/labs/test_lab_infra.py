"""Every lab overlay holds the workshop's manifest rules (its objects are validated by tests/unit/infra)."""

from __future__ import annotations

from typing import Any

import pytest

from labkit import PROJECT_IMAGE, ManifestError, load_manifests
from labkit.kustomize import OVERLAYS, overlay
from tests.manifest_validation import kustomized_files, validate

LAB_OVERLAYS = sorted(path.name for path in OVERLAYS.iterdir() if path.is_dir())


def deployments(lab_id: str) -> list[dict[str, Any]]:
    return [obj for obj in overlay(lab_id) if obj["kind"] == "Deployment"]


def test_the_labs_have_overlays() -> None:
    assert {"01-monolith", "02-microservices"} <= set(LAB_OVERLAYS)


@pytest.mark.parametrize("lab_id", LAB_OVERLAYS)
def test_every_lesson_file_is_valid_and_carries_its_lab_label(lab_id: str) -> None:
    """The manifests a lab applies step by step, beside its kustomization (bookinfo style)."""
    for path in sorted((OVERLAYS / lab_id).glob("*.yaml")):
        if path.name == "kustomization.yaml" or path.resolve() in kustomized_files(OVERLAYS / lab_id):
            continue
        for obj in load_manifests(path):
            validate(obj)
            assert obj["metadata"]["labels"]["bookstore.workshop/lab"] == lab_id, path.name


@pytest.mark.parametrize("lab_id", LAB_OVERLAYS)
def test_every_deployment_follows_the_workshop_rules(lab_id: str) -> None:
    for deployment in deployments(lab_id):
        name = deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert name in (labels["app"], f"{labels['app']}-{labels['version']}")
        assert labels["version"] == deployment["metadata"]["labels"]["version"]
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["image"] == PROJECT_IMAGE
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) <= set(container["resources"]["limits"])
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, (name, probe)
        env = {variable["name"]: variable["value"] for variable in container["env"]}
        assert env["BOOKSTORE_VERSION"] == labels["version"]
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        data = volumes[mounts[env["BOOKSTORE_DATA_DIR"]]]
        assert "persistentVolumeClaim" in data or "emptyDir" in data, name


@pytest.mark.parametrize("lab_id", LAB_OVERLAYS)
def test_every_service_selects_a_deployment_of_its_lab_on_a_named_port(lab_id: str) -> None:
    objects = overlay(lab_id)
    ports = {
        obj["spec"]["template"]["metadata"]["labels"]["app"]: {
            port["name"] for port in obj["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
        for obj in objects
        if obj["kind"] == "Deployment"
    }
    # Core Services only: a Knative Service (serving.knative.dev) is a workload, not a name for one.
    services = [obj for obj in objects if obj["kind"] == "Service" and obj["apiVersion"] == "v1"]
    assert {service["metadata"]["name"] for service in services} == set(ports)
    for service in services:
        app = service["spec"]["selector"]["app"]
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports[app]


def test_every_object_carries_its_lab_label() -> None:
    for lab_id in LAB_OVERLAYS:
        assert {obj["metadata"]["labels"]["bookstore.workshop/lab"] for obj in overlay(lab_id)} == {lab_id}


def test_the_monolith_keeps_its_database_on_a_claim_it_brings() -> None:
    objects = overlay("01-monolith")
    claims = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "PersistentVolumeClaim"}
    (monolith,) = deployments("01-monolith")
    assert monolith["spec"]["strategy"]["type"] == "Recreate"
    (data,) = [v for v in monolith["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert data["persistentVolumeClaim"]["claimName"] in claims


def test_the_storefront_finds_stock_and_balance_by_their_service_names() -> None:
    (storefront,) = [d for d in deployments("02-microservices") if d["metadata"]["name"] == "storefront"]
    env = {v["name"]: v["value"] for v in storefront["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BOOKSTORE_STOCK_URL"] == "http://stock" and env["BOOKSTORE_BALANCE_URL"] == "http://balance"


def test_a_missing_overlay_is_a_clear_error() -> None:
    with pytest.raises(ManifestError, match=r"no kustomize overlay '99-nothing'.*01-monolith"):
        overlay("99-nothing")


def test_kinds_selects_objects() -> None:
    assert [obj["kind"] for obj in overlay("01-monolith", kinds={"Service"})] == ["Service"]
