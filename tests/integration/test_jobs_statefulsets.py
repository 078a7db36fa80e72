"""batch/v1 Jobs and apps/v1 StatefulSets against a real localcluster, with kubectl 1.37 and the
official Python client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api

from localcluster.settings import PROJECT_IMAGE
from tests.integration.conftest import LocalCluster, poll_until

pytestmark = pytest.mark.integration

NAMESPACE = "bookstore"


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Iterator[ApiClient]:
    client = cluster.api_client()
    yield client
    client.close()


def job(name: str, program: str, restart_policy: str = "Never", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": restart_policy,
                    "containers": [{"name": "main", "image": PROJECT_IMAGE, "command": ["python", "-c", program]}],
                }
            },
        },
    }


def test_a_job_runs_to_complete(cluster: LocalCluster, api: ApiClient) -> None:
    manifest = job("count", "print('counted')", completions=3, parallelism=2)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    cluster.kubectl("wait", "--for=condition=Complete", "job/count", "--timeout=60s")
    found = BatchV1Api(api).read_namespaced_job("count", NAMESPACE)
    assert found.status.succeeded == 3 and not found.status.active and not found.status.failed
    assert found.status.start_time is not None and found.status.completion_time is not None
    conditions = {c.type: (c.status, c.reason) for c in found.status.conditions}
    assert conditions["Complete"] == ("True", "CompletionsReached")
    assert conditions["SuccessCriteriaMet"] == ("True", "CompletionsReached")
    uid = found.metadata.uid
    assert found.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    pods = CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector="batch.kubernetes.io/job-name=count").items
    assert len(pods) == 3
    for pod in pods:
        assert pod.metadata.name.startswith("count-")
        assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == uid
        assert pod.metadata.labels["job-name"] == "count"
        owner = pod.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.controller) == ("Job", "count", True)
    assert cluster.kubectl("logs", "job/count").stdout == "counted\n"
    table = cluster.kubectl("get", "job", "count").stdout
    assert "Complete" in table and "3/3" in table


def test_a_failing_job_fails_after_its_backoff_limit(cluster: LocalCluster, api: ApiClient) -> None:
    manifest = job("fails", "import sys; sys.exit(2)", backoffLimit=1)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    # One retry after the first failure, 10 s later (the pod failure back-off), then Failed.
    cluster.kubectl("wait", "--for=condition=Failed", "job/fails", "--timeout=60s")
    found = BatchV1Api(api).read_namespaced_job("fails", NAMESPACE)
    assert found.status.failed == 2
    failed = next(c for c in found.status.conditions if c.type == "Failed")
    assert (failed.reason, failed.message) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert "FailureTarget" in {c.type for c in found.status.conditions}
    pods = CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector="job-name=fails").items
    assert sorted(pod.status.phase for pod in pods) == ["Failed", "Failed"]
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=fails").stdout
    assert "BackoffLimitExceeded" in events


def test_a_job_with_restart_always_is_refused(cluster: LocalCluster) -> None:
    manifest = job("always", "pass", restart_policy="Always")
    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert "spec.template.spec.restartPolicy" in result.stderr


def test_a_finished_job_with_a_ttl_is_deleted_with_its_pods(cluster: LocalCluster, api: ApiClient) -> None:
    manifest = job("brief", "print('done')", ttlSecondsAfterFinished=0)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    poll_until(
        lambda: cluster.kubectl("get", "job", "brief", check=False).returncode,
        lambda code: code != 0,
        "the finished job to be deleted",
    )
    poll_until(
        lambda: CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector="job-name=brief").items,
        lambda pods: not pods,
        "the job's pods to be collected",
    )
