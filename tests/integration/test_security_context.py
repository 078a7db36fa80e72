"""securityContext on a real localcluster: honoured when it runs as root (uid, groups, fsGroup-owned volumes),
runAsNonRoot refused as upstream, and a Warning event wherever it cannot do what is asked. The non-root
path runs a whole localcluster as an unprivileged user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from kubernetes import config
from kubernetes.client import CoreV1Api

from localcluster.settings import PROJECT_IMAGE, PROJECT_ROOT
from tests.integration.conftest import LocalCluster, poll_until, running_cluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a localcluster running as root"),
]

NAMESPACE = "default"
#: Prints who the container runs as and who owns its emptyDir, then stays up.
WHOAMI = 'id -u; id -g; id -G; stat -L -c "%g %a" "$DATA"; touch "$DATA/new"; stat -c "%u %g" "$DATA/new"; sleep 3600'
#: The user nobody: present on every Linux, and not the node's user.
NOBODY = 65534


@pytest.fixture(scope="module")
def open_base() -> Iterator[Path]:
    """A directory other users may pass through: pytest's own temporary directories are closed (0700)."""
    base = Path(tempfile.mkdtemp(prefix="localcluster-security-"))
    base.chmod(0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def root_cluster(open_base: Path) -> Iterator[LocalCluster]:
    """localcluster as root, its LAB_HOME passable for other users (as the README says to make it)."""
    home = open_base / "lab-home"
    home.mkdir(mode=0o711)
    with running_cluster(home) as running:
        yield running


@pytest.fixture(scope="module")
def core(root_cluster: LocalCluster) -> Iterator[CoreV1Api]:
    with root_cluster.api_client() as client:
        yield CoreV1Api(client)


def shell_pod(name: str, script: str, security: dict[str, Any] | None = None, **container: Any) -> dict[str, Any]:
    spec = {
        "containers": [
            {
                "name": name,
                "image": PROJECT_IMAGE,
                "command": ["sh", "-c", script],
                "env": [{"name": "DATA", "value": "/data"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                **container,
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "securityContext": security or {},
        "terminationGracePeriodSeconds": 0,
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def logs_when_done(core: CoreV1Api, name: str, lines: int) -> list[str]:
    def read() -> list[str]:
        status = core.read_namespaced_pod(name, NAMESPACE).status.container_statuses or []
        if not (status and status[0].state.running):
            return []
        return core.read_namespaced_pod_log(name, NAMESPACE).splitlines()

    return poll_until(read, lambda seen: len(seen) >= lines, f"{lines} lines from {name}", timeout=60)


def waiting(core: CoreV1Api, name: str) -> tuple[str, str]:
    def read() -> tuple[str, str]:
        statuses = core.read_namespaced_pod(name, NAMESPACE).status.container_statuses or []
        state = statuses[0].state.waiting if statuses else None
        return (state.reason, state.message) if state else ("", "")

    return poll_until(read, lambda seen: seen[0] == "CreateContainerConfigError", f"{name} refused", timeout=60)


def warnings_of(core: CoreV1Api, name: str) -> list[str]:
    events = core.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={name}").items
    return [event.message for event in events if event.type == "Warning" and event.reason == "SecurityContext"]


def test_a_root_localcluster_runs_the_pod_as_its_user_with_its_groups_and_volumes(core: CoreV1Api) -> None:
    security = {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]}
    core.create_namespaced_pod(NAMESPACE, shell_pod("as-1000", WHOAMI, security))
    try:
        uid, gid, groups, volume, created = logs_when_done(core, "as-1000", 5)
        (status,) = core.read_namespaced_pod("as-1000", NAMESPACE).status.container_statuses
        process = psutil.Process(int(status.container_id.rsplit("/", 1)[1]))
        real_uid, real_gid = process.uids().real, process.gids().real
        said = warnings_of(core, "as-1000")
    finally:
        core.delete_namespaced_pod("as-1000", NAMESPACE)

    assert (uid, gid, set(groups.split())) == ("1000", "3000", {"3000", "2000", "4000"})
    assert (real_uid, real_gid) == (1000, 3000)
    volume_group, volume_mode = volume.split()
    assert volume_group == "2000" and int(volume_mode, 8) & 0o2070 == 0o2070  # setgid, group rwx
    assert created == "1000 2000"  # a new file in the volume belongs to fsGroup
    assert not [message for message in said if "runs as uid" in message]


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"runAsNonRoot": True}, "container has runAsNonRoot and image will run as root"),
        ({"runAsNonRoot": True, "runAsUser": 0}, "container's runAsUser breaks non-root policy"),
    ],
    ids=["image-user", "explicit-root"],
)
def test_run_as_non_root_is_refused_as_upstream(core: CoreV1Api, security: dict[str, Any], message: str) -> None:
    core.create_namespaced_pod(NAMESPACE, shell_pod("nonroot", "sleep 3600", security))
    try:
        _, said = waiting(core, "nonroot")
        uid = core.read_namespaced_pod("nonroot", NAMESPACE).metadata.uid
        events = core.list_namespaced_event(NAMESPACE, field_selector="involvedObject.name=nonroot").items
    finally:
        core.delete_namespaced_pod("nonroot", NAMESPACE, grace_period_seconds=0)
        poll_until(
            lambda: core.list_namespaced_pod(NAMESPACE, field_selector="metadata.name=nonroot").items,
            lambda pods: not pods,
            "the refused pod to go",
        )

    assert said == f'{message} (pod: "nonroot_{NAMESPACE}({uid})", container: nonroot)'
    assert f"Error: {said}" in [event.message for event in events if event.reason == "Failed"]


def test_a_user_that_cannot_reach_the_container_runs_it_as_root_and_a_warning_says_why(
    core: CoreV1Api, open_base: Path
) -> None:
    closed = open_base / "closed"
    closed.mkdir(mode=0o700, exist_ok=True)
    core.create_namespaced_pod(NAMESPACE, shell_pod("closed", WHOAMI, {"runAsUser": 1000}, workingDir=str(closed)))
    try:
        uid = logs_when_done(core, "closed", 5)[0]
        said = warnings_of(core, "closed")
    finally:
        core.delete_namespaced_pod("closed", NAMESPACE)

    assert uid == "0"
    assert any(f"uid 1000 may not enter {closed} (mode 0700" in message for message in said), said


def test_hardening_fields_localcluster_cannot_enforce_are_said(core: CoreV1Api) -> None:
    hardened = {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False}
    core.create_namespaced_pod(NAMESPACE, shell_pod("hardened", WHOAMI, {"runAsUser": 1000}, securityContext=hardened))
    try:
        logs_when_done(core, "hardened", 5)
        (said,) = poll_until(lambda: warnings_of(core, "hardened"), bool, "a SecurityContext warning", timeout=30)
    finally:
        core.delete_namespaced_pod("hardened", NAMESPACE)

    assert "readOnlyRootFilesystem is not enforced" in said and "no_new_privs" in said
    assert "capabilities.drop" not in said  # uid 1000 holds no capabilities: drop ALL is met


# -- the non-root path: a whole localcluster run by an unprivileged user ----------------------------


def _python_for_nobody() -> list[str] | None:
    """An interpreter of this Python version that `nobody` may run, with this project's packages importable."""
    candidate = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not candidate.exists():
        return None
    return [str(candidate)]


@pytest.fixture
def nobody_cluster(open_base: Path) -> Iterator[tuple[Path, CoreV1Api]]:
    python = _python_for_nobody()
    if python is None:
        pytest.skip("no system Python of this version for an unprivileged user to run localcluster with")
    home = open_base / "nobody-home"
    home.mkdir(mode=0o700)
    os.chown(home, NOBODY, NOBODY)
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LAB_HOME": str(home),
        # The project and its dependencies, as the venv has them (a .pth file is not read from PYTHONPATH).
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), sysconfig.get_paths()["purelib"]]),
    }

    def lab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*python, "-m", "localcluster.cli", *args],
            env=environment,
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=120,
        )

    started = lab("up", "--timeout", "60")
    if started.returncode != 0:
        lab("down")
        pytest.fail(f"localcluster as nobody did not start: {started.stderr[-2000:]}")
    api = config.new_client_from_config(config_file=str(home / "kubeconfig"))
    try:
        yield home, CoreV1Api(api)
    finally:
        api.close()
        lab("down")


def test_a_localcluster_that_is_not_root_says_it_cannot_switch_users(nobody_cluster: tuple[Path, CoreV1Api]) -> None:
    home, core = nobody_cluster
    security = {"runAsUser": 1000, "runAsNonRoot": True, "fsGroup": 2000}
    core.create_namespaced_pod(NAMESPACE, shell_pod("as-1000", WHOAMI, security))
    uid = logs_when_done(core, "as-1000", 5)[0]
    said = poll_until(lambda: warnings_of(core, "as-1000"), lambda found: len(found) >= 2, "two warnings", timeout=30)
    server = json.loads((home / "localcluster.json").read_text())

    assert uid == str(NOBODY)
    assert psutil.Process(server["pid"]).uids().real == NOBODY
    assert any("does not run as root, so it cannot switch users" in message for message in said), said
    assert any("not fsGroup 2000" in message for message in said), said
