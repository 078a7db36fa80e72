"""The kubelet against a real localcluster, through the official kubernetes client and kubectl:
pods as process groups with their own addresses, restarts and back-off, probes, logs, grace periods,
and a restart of localcluster after `kill -9`."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from localcluster.settings import PROJECT_IMAGE
from tests.integration.conftest import LocalCluster, eventually

pytestmark = pytest.mark.integration

PODPROGRAMS = Path(__file__).parent / "podprograms"
HTTP_SERVER = str(PODPROGRAMS / "http_server.py")
IGNORE_SIGTERM = ["python", str(PODPROGRAMS / "ignore_sigterm.py")]
NAMESPACE = "default"


def pod_manifest(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": spec.pop("container_name", name), "image": PROJECT_IMAGE, "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [container], **spec},
    }


def http_pod(name: str, **spec: Any) -> dict[str, Any]:
    return pod_manifest(name, ["python", HTTP_SERVER], **spec)


def read(core: CoreV1Api, name: str) -> Any:
    return core.read_namespaced_pod(name, NAMESPACE)


def ready(core: CoreV1Api, name: str) -> Any:
    pod = read(core, name)
    conditions = {c.type: c.status for c in pod.status.conditions or []}
    return pod if conditions.get("Ready") == "True" else None


def container_state(core: CoreV1Api, name: str) -> Any:
    statuses = read(core, name).status.container_statuses or []
    return statuses[0] if statuses else None


def answer(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2, trust_env=False)
    except httpx.TransportError:
        return None


def pid_of(status: Any) -> int:
    return int(status.container_id.rsplit("/", 1)[1])


def events_of(core: CoreV1Api, name: str) -> dict[str, list[str]]:
    events = core.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={name}").items
    found: dict[str, list[str]] = {}
    for event in events:
        found.setdefault(event.reason, []).append(event.message)
    return found


def delete_now(core: CoreV1Api, *names: str) -> None:
    for name in names:
        try:
            core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise


def test_http_pods_get_their_own_address_and_both_serve_8080(core: CoreV1Api, cluster: LocalCluster) -> None:
    network = ipaddress.IPv4Network((cluster.home / "pod-network").read_text().strip())
    names = ("web-a", "web-b")
    for name in names:
        core.create_namespaced_pod(NAMESPACE, http_pod(name))
    try:
        pods = [eventually(lambda n=name: ready(core, n), f"pod {name} Ready") for name in names]
        addresses = [pod.status.pod_ip for pod in pods]
        assert len(set(addresses)) == 2
        for pod, address in zip(pods, addresses, strict=True):
            assert ipaddress.IPv4Address(address) in network and network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8"))
            assert address != "127.0.0.1"
            assert pod.status.phase == "Running"
            assert pod.spec.node_name == "localcluster"
            assert pod.status.host_ip == "127.0.0.1"
            status = pod.status.container_statuses[0]
            assert status.state.running is not None and status.ready and status.restart_count == 0
            assert status.container_id.startswith("localcluster://")
            response = eventually(lambda a=address: answer(f"http://{a}:8080/"), f"{address}:8080 answering")
            assert response.text == pod.metadata.name
        assert {"Scheduled", "Pulled", "Created", "Started"} <= set(events_of(core, "web-a"))
    finally:
        delete_now(core, *names)


def test_environment_volumes_and_init_containers(core: CoreV1Api, cluster: LocalCluster) -> None:
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "greeting"}, "data": {"text": "hello"}})
    core.create_namespaced_persistent_volume_claim(
        NAMESPACE,
        {
            "metadata": {"name": "books"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    program = (
        "import os; d = os.environ['DATA_DIR']; open(d + '/out', 'w').write(os.environ['GREETING'] + ' ' + "
        "os.environ['POD'] + ' ' + open(os.environ['CONFIG'] + '/text').read() + ' ' + open('work/seed').read())"
    )
    manifest = pod_manifest(
        "volumes",
        ["python", "-c", program],
        restartPolicy="Never",
        volumes=[
            {"name": "data", "persistentVolumeClaim": {"claimName": "books"}},
            {"name": "config", "configMap": {"name": "greeting"}},
            {"name": "work", "emptyDir": {}},
        ],
        initContainers=[
            {
                "name": "seed",
                "image": PROJECT_IMAGE,
                "command": ["python", "-c", "import os; open(os.environ['WORK'] + '/seed', 'w').write('seeded')"],
                "env": [{"name": "WORK", "value": "/work"}],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            }
        ],
        container={
            "env": [
                {"name": "DATA_DIR", "value": "/var/lib/books"},
                {"name": "CONFIG", "value": "/etc/greeting"},
                {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "greeting", "key": "text"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "volumeMounts": [
                {"name": "data", "mountPath": "/var/lib/books"},
                {"name": "config", "mountPath": "/etc/greeting"},
                {"name": "work", "mountPath": "/work"},
            ],
        },
    )
    core.create_namespaced_pod(NAMESPACE, manifest)
    try:
        pod = eventually(
            lambda: (p := read(core, "volumes")).status.phase in ("Succeeded", "Failed") and p, "completion"
        )
        assert pod.status.phase == "Succeeded", pod.status
        assert pod.status.init_container_statuses[0].state.terminated.reason == "Completed"
        written = cluster.home / "volumes" / NAMESPACE / "books" / "out"
        assert written.read_text() == "hello volumes hello seeded"
        claim = core.read_namespaced_persistent_volume_claim("books", NAMESPACE)
        assert claim.status.phase == "Bound"
    finally:
        delete_now(core, "volumes")
        core.delete_namespaced_config_map("greeting", NAMESPACE)
    assert written.exists(), "a claim's data outlives its pod"
    core.delete_namespaced_persistent_volume_claim("books", NAMESPACE)
    eventually(lambda: not written.parent.exists(), "the claim's data to go with the claim (reclaim policy Delete)")


def test_a_crashing_container_backs_off_10_then_20_seconds(core: CoreV1Api) -> None:
    core.create_namespaced_pod(NAMESPACE, pod_manifest("crash", ["python", "-c", "raise SystemExit(3)"]))
    try:

        def backing_off(seconds: int) -> Any:
            status = container_state(core, "crash")
            waiting = status and status.state.waiting
            return (
                waiting
                and waiting.reason == "CrashLoopBackOff"
                and f"back-off {seconds}s" in waiting.message
                and status
            )

        first = eventually(lambda: backing_off(10), "CrashLoopBackOff with a 10 s back-off", timeout=10)
        assert first.last_state.terminated.exit_code == 3
        assert first.last_state.terminated.reason == "Error"
        started = time.monotonic()
        second = eventually(lambda: backing_off(20), "the back-off doubling to 20 s", timeout=15)
        assert time.monotonic() - started > 7, "the 10 s back-off was not waited out"
        assert second.restart_count > first.restart_count
        assert any(m.startswith("Back-off restarting failed container") for m in events_of(core, "crash")["BackOff"])
        assert read(core, "crash").status.phase == "Running"
    finally:
        delete_now(core, "crash")


def test_a_failing_liveness_probe_restarts_the_container(core: CoreV1Api, tmp_path: Path) -> None:
    marker = tmp_path / "unhealthy"
    probe = {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    manifest = http_pod(
        "liveness",
        terminationGracePeriodSeconds=1,
        container={"livenessProbe": probe, "env": [{"name": "UNHEALTHY_MARKER", "value": str(marker)}]},
    )
    core.create_namespaced_pod(NAMESPACE, manifest)
    try:
        first = eventually(lambda: ready(core, "liveness"), "pod Ready").status.container_statuses[0]
        marker.touch()
        restarted = eventually(
            lambda: (s := container_state(core, "liveness")).restart_count >= 1 and s.state.running and s,
            "a restart after the liveness probe failed",
        )
        marker.unlink()
        assert pid_of(restarted) != pid_of(first)
        assert restarted.last_state.terminated is not None
        events = events_of(core, "liveness")
        assert any("failed liveness probe, will be restarted" in m for m in events["Killing"])
        assert any(
            m.startswith("Liveness probe failed: HTTP probe failed with statuscode: 500") for m in events["Unhealthy"]
        )
    finally:
        delete_now(core, "liveness")


def test_a_run_once_pod_succeeds_and_its_logs_read_like_upstream(core: CoreV1Api, cluster: LocalCluster) -> None:
    core.create_namespaced_pod(
        NAMESPACE, pod_manifest("once", ["python", "-c", "print('hello'); print('world')"], restartPolicy="Never")
    )
    try:
        pod = eventually(lambda: (p := read(core, "once")).status.phase == "Succeeded" and p, "pod Succeeded")
        terminated = pod.status.container_statuses[0].state.terminated
        assert (terminated.exit_code, terminated.reason) == (0, "Completed")
        conditions = {c.type: (c.status, c.reason) for c in pod.status.conditions}
        assert conditions["Ready"] == ("False", "PodCompleted")
        assert core.read_namespaced_pod_log("once", NAMESPACE) == "hello\nworld\n"
        assert core.read_namespaced_pod_log("once", NAMESPACE, tail_lines=1) == "world\n"
        assert core.read_namespaced_pod_log("once", NAMESPACE, limit_bytes=3) == "hel"
        stamped = core.read_namespaced_pod_log("once", NAMESPACE, timestamps=True).splitlines()
        assert stamped[0].endswith("Z hello") and stamped[0][:4].isdigit()
        assert cluster.kubectl("logs", "-n", NAMESPACE, "once").stdout == "hello\nworld\n"
        previous = cluster.kubectl("logs", "-n", NAMESPACE, "once", "--previous", check=False)
        assert 'previous terminated container "once" in pod "once" not found' in previous.stderr
        with pytest.raises(ApiException) as bad:
            core.read_namespaced_pod_log("once", NAMESPACE, container="nope")
        assert bad.value.status == 400 and "container nope is not valid for pod once" in bad.value.body
    finally:
        delete_now(core, "once")


def test_logs_of_a_pod_with_two_containers_need_a_container_name(core: CoreV1Api) -> None:
    manifest = pod_manifest("pair", ["python", "-c", "print('one')"], restartPolicy="Never")
    manifest["spec"]["containers"].append({"name": "two", "image": PROJECT_IMAGE, "command": ["python", "-c", "1"]})
    core.create_namespaced_pod(NAMESPACE, manifest)
    try:
        with pytest.raises(ApiException) as missing:
            core.read_namespaced_pod_log("pair", NAMESPACE)
        assert missing.value.status == 400
        body = json.loads(missing.value.body)
        assert body["message"] == "a container name must be specified for pod pair, choose one of: [pair two]"
        eventually(lambda: read(core, "pair").status.phase == "Succeeded", "pod Succeeded")
        assert core.read_namespaced_pod_log("pair", NAMESPACE, container="pair") == "one\n"
    finally:
        delete_now(core, "pair")


def test_kubectl_logs_follow_streams_until_the_container_exits(
    core: CoreV1Api, cluster: LocalCluster, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    program = (
        "import os, time\nprint('first', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\nprint('last', flush=True)"
    )
    core.create_namespaced_pod(NAMESPACE, pod_manifest("follow", ["python", "-c", program], restartPolicy="Never"))
    try:
        eventually(lambda: (s := container_state(core, "follow")) and s.state.running, "container running")
        follower = cluster.kubectl_streaming("logs", "-f", "-n", NAMESPACE, "follow")
        try:
            assert follower.stdout is not None
            assert follower.stdout.readline() == "first\n"
            assert follower.poll() is None, "kubectl logs -f ended while the container runs"
            go.touch()
            assert follower.stdout.readline() == "last\n"
            assert follower.wait(timeout=15) == 0
        finally:
            follower.kill()
            follower.communicate()
    finally:
        delete_now(core, "follow")


def test_a_foreign_image_waits_with_a_clear_reason(core: CoreV1Api) -> None:
    manifest = pod_manifest("nginx", ["nginx"])
    manifest["spec"]["containers"][0]["image"] = "nginx:1.27"
    core.create_namespaced_pod(NAMESPACE, manifest)
    try:
        status = eventually(lambda: (s := container_state(core, "nginx")) and s.state.waiting and s, "a Waiting state")
        waiting = eventually(
            lambda: (
                (w := container_state(core, "nginx").state.waiting).reason in ("ErrImagePull", "ImagePullBackOff") and w
            ),
            "an image pull error",
        )
        assert "localcluster runs only the workshop image" in waiting.message
        assert "cannot pull nginx:1.27" in waiting.message
        assert status.ready is False and read(core, "nginx").status.phase == "Pending"
        assert any('Failed to pull image "nginx:1.27"' in m for m in events_of(core, "nginx")["Failed"])
    finally:
        delete_now(core, "nginx")


def test_a_pod_ignoring_sigterm_is_killed_at_its_grace_deadline(core: CoreV1Api) -> None:
    program = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(600)"
    )
    core.create_namespaced_pod(
        NAMESPACE, pod_manifest("stubborn", ["python", "-c", program], terminationGracePeriodSeconds=2)
    )
    status = eventually(lambda: (s := container_state(core, "stubborn")) and s.state.running and s, "container running")
    eventually(lambda: core.read_namespaced_pod_log("stubborn", NAMESPACE) == "up\n", "the SIGTERM handler installed")
    process = psutil.Process(pid_of(status))
    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", NAMESPACE)
    terminating = read(core, "stubborn")
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 2

    def gone() -> bool:
        try:
            read(core, "stubborn")
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, "the pod object removed", timeout=10)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 6, f"pod removed after {elapsed:.1f} s, grace period was 2 s"
    assert not process.is_running()
    assert "Stopping container stubborn" in events_of(core, "stubborn")["Killing"]


def _server_pid(cluster: LocalCluster) -> int:
    return int(json.loads((cluster.home / "localcluster.json").read_text())["pid"])


def test_kill_9_then_lab_up_brings_pods_back(fresh_cluster: LocalCluster) -> None:
    client = fresh_cluster.api_client()
    core = CoreV1Api(client)
    core.create_namespaced_pod(NAMESPACE, http_pod("survivor"))
    before = eventually(lambda: ready(core, "survivor"), "pod Ready")
    old_pid = pid_of(before.status.container_statuses[0])
    old_process = psutil.Process(old_pid)
    client.close()
    os.kill(_server_pid(fresh_cluster), signal.SIGKILL)
    fresh_cluster.lab("up")
    assert not old_process.is_running(), "the pod's process from before the crash is still running"
    client = fresh_cluster.api_client()
    core = CoreV1Api(client)
    try:
        after = eventually(
            lambda: (p := ready(core, "survivor")) and p.status.container_statuses[0].restart_count and p,
            "pod Ready again",
        )
        status = after.status.container_statuses[0]
        assert after.status.pod_ip == before.status.pod_ip
        assert status.restart_count == 1 and pid_of(status) != old_pid
        assert status.last_state.terminated.reason == "ContainerStatusUnknown"
        assert eventually(lambda: answer(f"http://{after.status.pod_ip}:8080/"), "the pod answering").text == "survivor"
    finally:
        client.close()


def test_lab_down_leaves_no_pod_process_behind(fresh_cluster: LocalCluster) -> None:
    client = fresh_cluster.api_client()
    core = CoreV1Api(client)
    program = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(600)"
    )
    try:
        core.create_namespaced_pod(NAMESPACE, pod_manifest("stubborn", ["python", "-c", program]))
        core.create_namespaced_pod(NAMESPACE, http_pod("polite"))
        statuses = [
            eventually(lambda n=name: (s := container_state(core, n)) and s.state.running and s, f"{name} running")
            for name in ("stubborn", "polite")
        ]
        eventually(
            lambda: core.read_namespaced_pod_log("stubborn", NAMESPACE) == "up\n", "the SIGTERM handler installed"
        )
    finally:
        client.close()
    pods = [psutil.Process(pid_of(status)) for status in statuses]
    fresh_cluster.lab("down", timeout=60)
    assert not [p.pid for p in pods if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not list((fresh_cluster.home / "run").glob("*.pgid"))
