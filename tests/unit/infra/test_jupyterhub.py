"""infra/jupyterhub without a cluster: the templates the hub applies render to valid objects, and the
values, templates and hub hook agree with one another and with labkit (names, labels, image, mounts)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import yaml

from labkit.progress import ATTENDEE_LABEL
from localcluster.settings import PROJECT_IMAGE
from tests.jupyterhub_hub import HUB, hub_module
from tests.manifest_validation import validate


@pytest.fixture(scope="module")
def hub() -> ModuleType:
    return hub_module()


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((HUB / "values.yaml").read_text())


@pytest.mark.parametrize("instructor", [False, True])
def test_what_the_hub_makes_is_valid_and_in_the_users_namespace(hub: ModuleType, instructor: bool) -> None:
    objects = hub.objects_for("bookstore-ada", "ada", instructor=instructor, templates=HUB)
    kinds = [obj["kind"] for obj in objects]
    expected = ["ServiceAccount", "RoleBinding", "ResourceQuota", "LimitRange"]
    assert kinds == [*expected, "ClusterRoleBinding"] if instructor else kinds == expected
    for obj in objects:
        validate(obj)
        if obj["kind"] != "ClusterRoleBinding":
            assert obj["metadata"]["namespace"] == "bookstore-ada"
    binding = objects[1]
    assert binding["roleRef"]["name"] == "bookstore-attendee"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "jupyter", "namespace": "bookstore-ada"}]


def test_the_values_spawn_the_image_as_the_bound_service_account(values: dict) -> None:
    singleuser = values["singleuser"]
    assert f"{singleuser['image']['name']}:{singleuser['image']['tag']}" == PROJECT_IMAGE
    assert singleuser["cmd"] == "jupyterhub-singleuser" and singleuser["uid"] == 1000
    template = (HUB / "attendee-namespace.yaml.tmpl").read_text()
    assert f"name: {singleuser['serviceAccountName']}\n" in template
    spawner = values["hub"]["config"]["KubeSpawner"]
    assert spawner["enable_user_namespaces"] is True
    assert ATTENDEE_LABEL in spawner["user_namespace_labels"]
    assert spawner["environment"]["LAB_NAMESPACE"] == "{namespace}"


def test_the_hub_finds_its_templates_where_the_values_mount_them(hub: ModuleType, values: dict) -> None:
    mounts = {key: Path(entry["mountPath"]) for key, entry in values["hub"]["extraFiles"].items()}
    assert mounts["bookstore-hub"].parent.name == "jupyterhub_config.d"
    for key in ("attendee-namespace", "instructor"):
        assert mounts[key].parent == hub.TEMPLATES
        assert (HUB / mounts[key].name).is_file()
    install = (HUB / "values.yaml").read_text()
    for key, mount in mounts.items():
        assert f"--set-file hub.extraFiles.{key}.stringData=infra/jupyterhub/{mount.name}" in install
