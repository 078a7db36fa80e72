from pathlib import Path

import pytest
import yaml

from labkit import PROJECT_IMAGE, ManifestError, load_manifests, manifest
from labkit._apply import MANIFESTS

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello"}}


def test_every_lab_manifest_loads_and_runs_the_project_image() -> None:
    paths = sorted(MANIFESTS.rglob("*.yaml"))
    assert paths
    for path in paths:
        for obj in load_manifests(path):
            for container in obj.get("spec", {}).get("containers", []):
                assert container["image"] == PROJECT_IMAGE, path


def test_the_hello_pod_greets_and_runs_once() -> None:
    pod = manifest("00-setup/hello-pod.yaml")
    assert pod["spec"]["restartPolicy"] == "Never"
    assert "hello from the bookstore" in pod["spec"]["containers"][0]["args"][0]


def test_sources_of_every_shape_give_the_same_objects(tmp_path: Path) -> None:
    text = yaml.safe_dump_all([POD, {**POD, "metadata": {"name": "two"}}])
    file = tmp_path / "two.yaml"
    file.write_text(text)
    expected = [POD, {**POD, "metadata": {"name": "two"}}]
    assert load_manifests(text) == expected
    assert load_manifests(file) == expected
    assert load_manifests(str(file)) == expected
    assert load_manifests(expected) == expected
    assert load_manifests({"apiVersion": "v1", "kind": "List", "items": expected}) == expected
    assert load_manifests(POD) == [POD]


def test_loaded_objects_are_copies() -> None:
    (loaded,) = load_manifests(POD)
    loaded["metadata"]["name"] = "changed"
    assert POD["metadata"]["name"] == "hello"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("kind: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ({"kind": "Pod", "metadata": {"name": "x"}}, "has no apiVersion"),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {}}, "Pod manifest has no metadata.name"),
        ("missing/file.yaml", "cannot read manifest file missing/file.yaml"),
    ],
)
def test_a_bad_manifest_says_what_is_wrong(source: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_manifests(source)  # type: ignore[arg-type]


def test_an_unknown_lab_manifest_is_named() -> None:
    with pytest.raises(ManifestError, match=r"no manifest '00-setup/nope\.yaml'"):
        manifest("00-setup/nope.yaml")
