import dataclasses

import pytest

import checkers
from checkers import CheckResult, Status, run_check
from checkers.lab00_setup import reset

from .fake_cluster import FakeConnection


def run(check_id: str, cluster: FakeConnection, timeout: float | None = None) -> CheckResult:
    (check,) = checkers.select(check_id)
    if timeout is not None:
        check = dataclasses.replace(check, timeout=timeout)
    return run_check(check, cluster)


def test_00_1_reports_the_api_and_its_kinds(cluster: FakeConnection) -> None:
    result = run("00.1", cluster)
    assert result.status is Status.PASSED
    assert "https://127.0.0.1:6443" in result.message
    assert result.evidence["core_resources"] == ["configmaps", "namespaces", "pods", "services"]


def test_00_2_passes_for_the_active_bookstore_namespace(cluster: FakeConnection) -> None:
    assert run("00.2", cluster).status is Status.PASSED


def test_00_2_fails_with_a_hint_when_the_namespace_is_missing(cluster: FakeConnection) -> None:
    cluster.core.namespaces.clear()
    result = run("00.2", cluster)
    assert result.status is Status.FAILED
    assert "kubectl get namespaces" in result.hint
    # The answer comes last, and works on localcluster too (kubectl's `create` generators send protobuf).
    assert (
        "labkit.apply({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'bookstore'}})" in result.hints[-1]
    )


def test_00_2_fails_when_the_connection_works_elsewhere(cluster: FakeConnection) -> None:
    cluster.namespace = "default"
    result = run("00.2", cluster)
    assert result.status is Status.FAILED
    assert result.evidence == {"selected": "default", "expected": "bookstore"}


def test_00_2_follows_lab_namespace(cluster: FakeConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_NAMESPACE", "attendee-7")
    cluster.namespace = "attendee-7"
    cluster.core.namespaces["attendee-7"] = "Terminating"
    result = run("00.2", cluster)
    assert result.status is Status.FAILED
    assert "is Terminating, not Active" in result.message


def test_00_3_fails_at_once_when_there_is_no_pod(cluster: FakeConnection) -> None:
    result = run("00.3", cluster)
    assert result.status is Status.FAILED
    assert "no pod named 'hello'" in result.message
    assert result.duration < 5  # a missing pod is not waited for


def test_00_3_reports_a_pod_that_never_started_at_once(cluster: FakeConnection) -> None:
    cluster.add_pod("Pending", waiting="ErrImagePull")
    result = run("00.3", cluster)  # its full budget: an image that cannot be pulled is not waited for
    assert result.status is Status.FAILED
    assert (
        result.message == "The pod 'hello' has not finished: container hello of pod hello cannot start: ErrImagePull: x"
    )
    assert "kubectl describe pod hello" in result.hint
    assert "kubectl delete pod hello" in result.hints[-1]


def test_00_3_waits_for_a_pod_being_created_and_says_so(cluster: FakeConnection) -> None:
    cluster.add_pod("Pending", waiting="ContainerCreating")
    result = run("00.3", cluster, timeout=0.3)
    assert result.status is Status.FAILED
    assert result.message == "The pod 'hello' has still not finished: pod hello is Pending (ContainerCreating)."


def test_00_3_passes_once_the_pod_greeted(cluster: FakeConnection) -> None:
    cluster.add_pod("Succeeded", logs="hello from the bookstore, reader!\n")
    result = run("00.3", cluster)
    assert result.status is Status.PASSED
    assert result.evidence["logs"] == "hello from the bookstore, reader!"


def test_00_3_fails_when_the_pod_said_something_else(cluster: FakeConnection) -> None:
    cluster.add_pod("Succeeded", logs="hi\n")
    assert "do not say 'hello from the bookstore'" in run("00.3", cluster).message


def test_00_3_fails_when_the_pod_failed(cluster: FakeConnection) -> None:
    cluster.add_pod("Failed", logs="Traceback ...\n")
    result = run("00.3", cluster)
    assert (result.status, result.message) == (Status.FAILED, "The pod 'hello' ran but failed: Traceback ...")


def test_00_4_wants_the_reader_named(cluster: FakeConnection) -> None:
    cluster.add_pod("Succeeded", logs="hello from the bookstore, reader!\n")
    result = run("00.4", cluster)
    assert result.status is Status.FAILED
    assert "kubectl delete pod hello" in result.hint


def test_00_4_fails_when_the_logs_do_not_greet_the_reader(cluster: FakeConnection) -> None:
    cluster.add_pod("Succeeded", logs="hello from the bookstore, reader!\n", reader="Ada")
    assert "do not greet Ada" in run("00.4", cluster).message


def test_00_4_passes_when_greeted_by_name(cluster: FakeConnection) -> None:
    cluster.add_pod("Succeeded", logs="hello from the bookstore, Ada!\n", reader="Ada")
    result = run("00.4", cluster)
    assert result.status is Status.PASSED
    assert result.evidence["READER"] == "Ada"


def test_reset_removes_the_pod_and_is_happy_when_there_is_none(cluster: FakeConnection) -> None:
    cluster.add_pod("Succeeded")
    reset(cluster)
    assert "hello" not in cluster.core.pods
    reset(cluster)
    assert run("00.3", cluster).status is Status.FAILED
