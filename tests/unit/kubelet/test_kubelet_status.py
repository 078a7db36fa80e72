"""Pod phase and conditions from container records, as upstream's getPhase and condition generators."""

from __future__ import annotations

import pytest

from localcluster.kubelet._status import ContainerRecord, conditions, merge_conditions, phase, pod_status

IMAGE = "ghcr.io/cloud-native-bookstore/workshop:latest"


def record(state: str, exit_code: int = 0, *, last: int | None = None, ready: bool = False) -> ContainerRecord:
    result = ContainerRecord("c", IMAGE, ready=ready)
    result.state = {
        "running": {"state": {"running": {}}},
        "terminated": {"state": {"terminated": {"exitCode": exit_code}}},
        "waiting": {"state": {"waiting": {"reason": "CrashLoopBackOff"}}},
    }[state]["state"]
    if last is not None:
        result.last_state = {"terminated": {"exitCode": last}}
    return result


@pytest.mark.parametrize(
    ("policy", "records", "expected"),
    [
        ("Always", [record("running")], "Running"),
        ("Always", [record("waiting")], "Pending"),
        ("Always", [record("waiting", last=1)], "Running"),
        ("Always", [record("terminated", 0)], "Running"),
        ("Never", [record("terminated", 0)], "Succeeded"),
        ("Never", [record("terminated", 0), record("terminated", 2)], "Failed"),
        ("OnFailure", [record("terminated", 0)], "Succeeded"),
        ("OnFailure", [record("terminated", 0), record("waiting", last=1)], "Running"),
        ("Never", [record("terminated", 0), record("running")], "Running"),
    ],
)
def test_phase_of_app_containers(policy: str, records: list[ContainerRecord], expected: str) -> None:
    assert phase(policy, [], records) == expected


def test_init_containers_keep_the_pod_pending_or_fail_it() -> None:
    assert phase("Always", [record("running")], [record("waiting")]) == "Pending"
    assert phase("Always", [record("waiting", last=1)], [record("waiting")]) == "Pending"
    assert phase("Never", [record("terminated", 1)], [record("waiting")]) == "Failed"
    assert phase("Never", [record("terminated", 0)], [record("running")]) == "Running"


def test_conditions_name_the_unready_and_uninitialized_containers() -> None:
    init = [ContainerRecord("seed", IMAGE)]
    app = [ContainerRecord("web", IMAGE), ContainerRecord("side", IMAGE, ready=True)]
    found = {c["type"]: c for c in conditions("Pending", True, init, app)}
    assert found["PodReadyToStartContainers"]["status"] == "True"
    assert found["Initialized"]["reason"] == "ContainersNotInitialized"
    assert found["Initialized"]["message"] == "containers with incomplete status: [seed]"
    assert found["Ready"]["message"] == "containers with unready status: [web]"
    assert found["ContainersReady"]["reason"] == "ContainersNotReady"


def test_a_completed_pod_is_not_ready_because_it_completed() -> None:
    found = {c["type"]: c for c in conditions("Succeeded", True, [], [record("terminated", 0)])}
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "PodCompleted")
    assert found["PodReadyToStartContainers"]["status"] == "False"


def test_transition_times_change_only_with_the_status() -> None:
    old = [
        {"type": "Ready", "status": "False", "lastTransitionTime": "t0"},
        {"type": "Initialized", "status": "True", "lastTransitionTime": "t0"},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
    ]
    new = [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]
    merged = {c["type"]: c["lastTransitionTime"] for c in merge_conditions(old, new, "t1")}
    assert merged == {"Ready": "t1", "Initialized": "t0", "PodScheduled": "t0"}


def test_pod_status_carries_addresses_and_what_others_wrote() -> None:
    running = ContainerRecord("web", IMAGE, ready=True, started=True, container_id="localcluster://42")
    running.state = {"running": {"startedAt": "t"}}
    status = pod_status(
        {"qosClass": "BestEffort", "conditions": [{"type": "PodScheduled", "status": "True"}]},
        {"restartPolicy": "Always"},
        init=[],
        app=[running],
        pod_ip="127.244.0.2",
        start_time="t",
        sandbox_ready=True,
        now="t",
    )
    assert status["phase"] == "Running"
    assert (status["podIP"], status["podIPs"], status["hostIP"]) == (
        "127.244.0.2",
        [{"ip": "127.244.0.2"}],
        "127.0.0.1",
    )
    assert status["qosClass"] == "BestEffort"
    assert "PodScheduled" in {c["type"] for c in status["conditions"]}
    entry = status["containerStatuses"][0]
    assert (entry["containerID"], entry["imageID"], entry["ready"]) == ("localcluster://42", IMAGE, True)
    assert "initContainerStatuses" not in status


def test_a_record_restored_from_status_keeps_its_history() -> None:
    reported = {
        "state": {"running": {"startedAt": "t"}},
        "lastState": {"terminated": {"exitCode": 1}},
        "restartCount": 4,
        "containerID": "localcluster://7",
    }
    restored = ContainerRecord.restored("web", IMAGE, False, reported)
    assert restored.running and restored.restart_count == 4 and restored.container_id == "localcluster://7"
    assert restored.last_state == {"terminated": {"exitCode": 1}}
    assert ContainerRecord.restored("web", "nginx", False, None).status()["imageID"] == ""
