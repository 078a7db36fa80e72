"""securityContext decisions, for a root node and a non-root one: users honoured, runAsNonRoot refused as
upstream, and every field localcluster cannot honour said in a warning. The node's user is injected."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.kubelet._env import ContainerConfigError
from localcluster.kubelet._security import (
    NodeUser,
    RunAs,
    apply_fs_group,
    blocked_by,
    fs_group_warning,
    plan,
)

ROOT = NodeUser(0, 0, frozenset({0}))
LAPTOP = NodeUser(1001, 1001, frozenset({1001, 27}))
#: A uid with no passwd entry on any machine these tests run on: its group defaults to 0, as in a container.
NOBODY_KNOWS = 4242


def reachable(run_as: RunAs) -> str | None:
    return None


def pod(security: dict[str, Any] | None = None, **container: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "web", **container}], "securityContext": security or {}}
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}, "spec": spec}


def decide(manifest: dict[str, Any], node: NodeUser, can_reach: Any = reachable) -> Any:
    return plan(manifest, manifest["spec"]["containers"][0], node, can_reach)


def test_a_root_node_runs_the_container_as_its_user_group_and_groups() -> None:
    manifest = pod({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]})

    decided = decide(manifest, ROOT)

    assert decided.run_as == RunAs(1000, 3000, (2000, 4000))
    assert decided.warnings == ()
    assert decided.run_as.process_options() == {"user": 1000, "group": 3000, "extra_groups": [2000, 4000]}


def test_the_container_overrides_the_pod_and_a_user_without_group_gets_its_passwd_group() -> None:
    manifest = pod({"runAsUser": 1000}, securityContext={"runAsUser": NOBODY_KNOWS})

    assert decide(manifest, ROOT).run_as == RunAs(NOBODY_KNOWS, 0)


def test_nothing_asked_means_localclusters_own_user() -> None:
    assert decide(pod(), ROOT).run_as is None
    assert decide(pod({"runAsUser": 1001, "runAsGroup": 1001}), LAPTOP).run_as is None
    assert decide(pod(), LAPTOP).warnings == ()


@pytest.mark.parametrize(
    ("security", "node", "message"),
    [
        ({"runAsNonRoot": True, "runAsUser": 0}, ROOT, "container's runAsUser breaks non-root policy"),
        ({"runAsNonRoot": True, "runAsUser": 0}, LAPTOP, "container's runAsUser breaks non-root policy"),
        ({"runAsNonRoot": True}, ROOT, "container has runAsNonRoot and image will run as root"),
    ],
)
def test_run_as_non_root_is_refused_as_upstream(security: dict[str, Any], node: NodeUser, message: str) -> None:
    with pytest.raises(ContainerConfigError) as refused:
        decide(pod(security), node)

    assert str(refused.value) == f'{message} (pod: "web_shop(u-1)", container: web)'


def test_run_as_non_root_passes_where_the_process_will_not_be_root() -> None:
    assert decide(pod({"runAsNonRoot": True}), LAPTOP).run_as is None
    assert decide(pod({"runAsNonRoot": True, "runAsUser": 1000}), ROOT).run_as == RunAs(1000, 1000)


def test_a_node_that_is_not_root_says_it_cannot_switch_users() -> None:
    decided = decide(pod({"runAsUser": 1000, "runAsNonRoot": True, "fsGroup": 2000}), LAPTOP)

    assert decided.run_as is None
    (warning,) = decided.warnings
    assert "does not run as root" in warning and "runs as uid 1001" in warning and "uid 1000" in warning
    assert fs_group_warning(pod({"fsGroup": 2000}), LAPTOP) is not None
    assert fs_group_warning(pod({"fsGroup": 27}), LAPTOP) is None  # a group the node's user is in: it can
    assert fs_group_warning(pod({"fsGroup": 2000}), ROOT) is None


def test_a_user_that_cannot_reach_the_container_falls_back_with_a_warning() -> None:
    decided = decide(pod({"runAsUser": 1000}), ROOT, lambda run_as: "uid 1000 may not enter /root (mode 0700)")

    assert decided.run_as is None
    (warning,) = decided.warnings
    assert "cannot run as uid 1000" in warning and "/root (mode 0700)" in warning and "runs as uid 0" in warning


def test_read_only_root_filesystem_and_capabilities_are_said_as_they_are() -> None:
    hardened = {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    }
    as_user = decide(pod({"runAsUser": 1000}, securityContext=hardened), ROOT)
    as_root = decide(pod(securityContext=hardened), ROOT)

    (said,) = as_user.warnings
    assert "readOnlyRootFilesystem is not enforced" in said
    assert "capabilities.add ['NET_BIND_SERVICE'] is not granted" in said
    assert "no_new_privs" in said
    assert "capabilities.drop" not in said  # a process that is not root holds no capabilities: drop is met
    assert "capabilities.drop ['ALL'] is not applied: the container runs as root" in as_root.warnings[0]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may pass through (pytest's own temporary directories are closed: 0700)."""
    path = Path(tempfile.mkdtemp(prefix="security-test-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_blocked_by_names_the_first_closed_directory(open_dir: Path) -> None:
    closed = open_dir / "closed"
    inside = closed / "inside"
    inside.mkdir(parents=True)
    closed.chmod(0o700)
    someone = RunAs(NOBODY_KNOWS, NOBODY_KNOWS)
    owner = RunAs(os.geteuid(), os.getegid())

    assert (
        blocked_by([inside], someone)
        == f"uid {NOBODY_KNOWS} may not enter {closed} (mode 0700, owner uid {os.geteuid()})"
    )
    assert blocked_by([inside], owner) is None
    closed.chmod(0o711)
    assert blocked_by([inside], someone) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another group needs root")
def test_fs_group_owns_volumes_as_the_kubelet_does(tmp_path: Path) -> None:
    data, secret, host = tmp_path / "data", tmp_path / "secret", tmp_path / "host"
    for directory in (data, secret, host):
        directory.mkdir()
        (directory / "file").write_text("x")
        (directory / "file").chmod(0o600)
    manifest = pod({"fsGroup": 2000})
    manifest["spec"]["volumes"] = [
        {"name": "data", "emptyDir": {}},
        {"name": "secret", "secret": {"secretName": "s"}},
        {"name": "host", "hostPath": {"path": str(host)}},
    ]

    apply_fs_group(manifest, {"data": data, "secret": secret, "host": host}, ROOT)

    def owned(path: Path) -> tuple[int, int]:
        info = path.stat()
        return info.st_gid, stat.S_IMODE(info.st_mode)

    assert owned(data)[0] == 2000 and owned(data)[1] & (stat.S_ISGID | 0o070) == stat.S_ISGID | 0o070
    assert owned(data / "file") == (2000, 0o660)
    assert owned(secret / "file") == (2000, 0o640)
    assert owned(host / "file")[0] != 2000


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another group needs root")
def test_on_root_mismatch_leaves_a_volume_whose_top_is_right(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("x")
    manifest = pod({"fsGroup": 2000, "fsGroupChangePolicy": "OnRootMismatch"})
    manifest["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    apply_fs_group(manifest, {"data": data}, ROOT)
    (data / "later").write_text("y")  # a file the volume's top does not vouch for
    os.chown(data / "later", -1, 0)

    apply_fs_group(manifest, {"data": data}, ROOT)

    assert (data / "file").stat().st_gid == 2000
    assert (data / "later").stat().st_gid == 0
