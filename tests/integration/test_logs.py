"""Logs on a real localcluster: the server logs probe verdicts that change, not every probe; container logs
rotate by size and `kubectl logs` (whole, `--tail`, `-f`) reads across the rotations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CoreV1Api

from localcluster.settings import PROJECT_IMAGE
from tests.integration.conftest import LocalCluster, poll_until, running_cluster

pytestmark = pytest.mark.integration

NAMESPACE = "default"
HTTP_SERVER = str(Path(__file__).parent / "podprograms" / "http_server.py")
#: Small files so a few hundred lines rotate several times; enough of them that nothing written is dropped.
LOG_MAX_BYTES = 2048
LOG_MAX_FILES = 12
LINES = 300


@pytest.fixture(scope="module")
def small_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(
        tmp_path_factory.mktemp("lab-home"),
        LOCALCLUSTER_LOG_MAX_BYTES=str(LOG_MAX_BYTES),
        LOCALCLUSTER_LOG_MAX_FILES=str(LOG_MAX_FILES),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def core(small_logs: LocalCluster) -> Iterator[CoreV1Api]:
    with small_logs.api_client() as client:
        yield CoreV1Api(client)


def pod(name: str, command: list[str], **container: Any) -> dict[str, Any]:
    spec = {"name": name, "image": PROJECT_IMAGE, "command": command, **container}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [spec]}}


def test_the_server_logs_a_probe_verdict_once_not_every_probe(small_logs: LocalCluster, core: CoreV1Api) -> None:
    probe = {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1}
    core.create_namespaced_pod(NAMESPACE, pod("probed", ["python", HTTP_SERVER], readinessProbe=probe))
    try:
        poll_until(
            lambda: (
                core.read_namespaced_pod_log("probed", NAMESPACE).count("GET /health")
                if _running(core, "probed")
                else 0
            ),
            lambda probes: probes >= 5,
            "five readiness probes in the pod's own log",
            timeout=60,
        )
        server_log = (small_logs.home / "logs" / "localcluster.log").read_text()
    finally:
        core.delete_namespaced_pod("probed", NAMESPACE, grace_period_seconds=0)

    assert "/health" not in server_log
    verdicts = [line for line in server_log.splitlines() if "default/probed" in line and "probe" in line]
    assert len(verdicts) == 1 and verdicts[0].endswith("Readiness probe succeeds"), verdicts


def test_kubectl_logs_whole_tail_and_follow_across_rotations(
    small_logs: LocalCluster, core: CoreV1Api, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    program = (
        "import os, time\nprint('waiting', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        f"for number in range(1, {LINES + 1}): print(f'line {{number:03d}}', flush=True)\n"
        "print('done', flush=True)\ntime.sleep(3600)\n"
    )
    core.create_namespaced_pod(NAMESPACE, pod("chatty", ["python", "-c", program]))
    try:
        poll_until(
            lambda: core.read_namespaced_pod_log("chatty", NAMESPACE) if _running(core, "chatty") else "",
            lambda text: text == "waiting\n",
            "the container to start",
            timeout=60,
        )
        follower = small_logs.kubectl_streaming("logs", "-f", "-n", NAMESPACE, "chatty")
        try:
            assert follower.stdout is not None
            assert follower.stdout.readline() == "waiting\n"
            go.touch()
            followed = [follower.stdout.readline() for _ in range(LINES + 1)]
        finally:
            follower.kill()
            follower.communicate()
        whole = small_logs.kubectl("logs", "-n", NAMESPACE, "chatty").stdout
        tail = small_logs.kubectl("logs", "-n", NAMESPACE, "chatty", "--tail", "3").stdout
        uid = core.read_namespaced_pod("chatty", NAMESPACE).metadata.uid
    finally:
        core.delete_namespaced_pod("chatty", NAMESPACE, grace_period_seconds=0)

    expected = [f"line {number:03d}\n" for number in range(1, LINES + 1)] + ["done\n"]
    files = list((small_logs.home / "pods" / uid / "logs" / "chatty").glob("*.log*"))
    assert len(files) >= 4, "the container's log should have rotated several times"
    assert followed == expected
    assert whole == "waiting\n" + "".join(expected)
    assert tail == "".join(expected[-3:])


def _running(core: CoreV1Api, name: str) -> bool:
    statuses = core.read_namespaced_pod(name, NAMESPACE).status.container_statuses or []
    return bool(statuses and statuses[0].state.running)
