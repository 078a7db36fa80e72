"""Volumes as directories and the mount table that maps mountPaths onto them."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from localcluster.kubelet._env import ContainerConfigError
from localcluster.kubelet._volumes import MountTable, VolumeError, claim_dir, prepare_volumes

OBJECTS: dict[tuple[str, str], dict[str, Any]] = {
    ("configmaps", "site"): {"metadata": {"name": "site"}, "data": {"index.html": "<h1>hi</h1>", "mode": "fast"}},
    ("secrets", "tls"): {"metadata": {"name": "tls"}, "data": {"key": base64.b64encode(b"private").decode()}},
    ("persistentvolumeclaims", "books"): {"metadata": {"name": "books"}},
}


def lookup(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((kind, name))


def pod(*volumes: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "shop", "uid": "u"}, "spec": {"volumes": list(volumes)}}


def test_each_kind_of_volume_becomes_a_directory(tmp_path: Path) -> None:
    home, pod_dir = tmp_path / "home", tmp_path / "home" / "pods" / "u"
    volumes = prepare_volumes(
        pod(
            {"name": "scratch", "emptyDir": {}},
            {"name": "site", "configMap": {"name": "site", "items": [{"key": "index.html", "path": "www/index.html"}]}},
            {"name": "tls", "secret": {"secretName": "tls", "defaultMode": 0o400}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "books"}},
        ),
        pod_dir,
        home,
        lookup,
    )
    assert volumes["scratch"].is_dir() and volumes["scratch"].is_relative_to(pod_dir)
    assert (volumes["site"] / "www" / "index.html").read_text() == "<h1>hi</h1>"
    assert not (volumes["site"] / "mode").exists(), "only the listed items are projected"
    assert (volumes["tls"] / "key").read_text() == "private"
    assert volumes["data"] == claim_dir(home, "shop", "books") and volumes["data"].is_dir()


def test_missing_sources_and_unsupported_kinds_are_mount_failures(tmp_path: Path) -> None:
    cases = [
        ({"name": "c", "configMap": {"name": "gone"}}, 'configmap "gone" not found'),
        ({"name": "d", "persistentVolumeClaim": {"claimName": "gone"}}, 'persistentvolumeclaim "gone" not found'),
        ({"name": "e", "configMap": {"name": "site", "items": [{"key": "x", "path": "x"}]}}, "non-existent config key"),
        (
            {"name": "f", "configMap": {"name": "site", "items": [{"key": "mode", "path": "../up"}]}},
            "leaves the volume",
        ),
        ({"name": "g", "nfs": {"server": "x", "path": "/"}}, "not nfs"),
    ]
    for volume, message in cases:
        with pytest.raises(VolumeError, match=message):
            prepare_volumes(pod(volume), tmp_path / "pod", tmp_path, lookup)
    optional = prepare_volumes(
        pod({"name": "o", "configMap": {"name": "gone", "optional": True}}), tmp_path, tmp_path, lookup
    )
    assert list(optional["o"].iterdir()) == []


def test_mount_paths_are_symlinks_in_the_pod_root_and_paths_under_them_are_rewritten(tmp_path: Path) -> None:
    data, config = tmp_path / "data", tmp_path / "config"
    data.mkdir()
    config.mkdir()
    container = {
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/books"},
            {"name": "config", "mountPath": "/var/lib/books/config"},
            {"name": "data", "mountPath": "/reports", "subPath": "reports"},
        ]
    }
    root = tmp_path / "root"
    table = MountTable.link(root, container, {"data": data, "config": config})
    assert (root / "var/lib/books").resolve() == data.resolve()
    assert (data / "reports").is_dir()
    assert table.rewrite("/var/lib/books/db.sqlite") == f"{root}/var/lib/books/db.sqlite"
    assert table.rewrite("/var/lib/books/config/a") == f"{root}/var/lib/books/config/a"
    assert table.rewrite("/var/lib/bookstore") == "/var/lib/bookstore", "only whole path components match"
    assert table.rewrite("relative/path") == "relative/path"
    assert table.rewrite_argument("--data=/reports/x") == f"--data={root}/reports/x"
    assert table.working_dir(None) == root
    assert table.working_dir("app") == root / "app"
    assert table.working_dir("/reports") == root / "reports"
    assert table.working_dir("/usr") == Path("/usr"), "other absolute paths are host paths"
    # Linking again (a restart) is fine; another volume at the same path is not.
    MountTable.link(root, container, {"data": data, "config": config})
    with pytest.raises(ContainerConfigError, match="one filesystem root per pod"):
        MountTable.link(root, {"volumeMounts": [{"name": "config", "mountPath": "/reports"}]}, {"config": config})


def test_bad_mounts_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ContainerConfigError, match="names no volume"):
        MountTable.link(tmp_path, {"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, {})
    with pytest.raises(ContainerConfigError, match="must be an absolute path below /"):
        MountTable.link(tmp_path, {"volumeMounts": [{"name": "v", "mountPath": "/"}]}, {"v": tmp_path})
