"""The StatefulSet and Job controllers in-process, one reconcile pass at a time (the kubelet's part,
pods becoming Running, Ready, Succeeded or Failed, is written by the test)."""

from __future__ import annotations

from typing import Any

from localcluster.api.cluster import Cluster, now
from localcluster.controllers.jobs import JobController
from localcluster.controllers.statefulsets import StatefulSetController

NAMESPACE = "bookstore"
CONTAINER = {"name": "main", "image": "ghcr.io/cloud-native-bookstore/workshop:latest", "command": ["true"]}


def names(cluster: Cluster, plural: str) -> list[str]:
    resource_type = cluster.registry.get("", plural)
    return sorted(entry.obj["metadata"]["name"] for entry in cluster.store.list(resource_type.key, NAMESPACE)[0])


def set_pod_status(cluster: Cluster, name: str, phase: str, *, ready: bool = False, exit_code: int = 0) -> None:
    pods = cluster.registry.get("", "pods")
    pod = cluster.find(pods, NAMESPACE, name)
    assert pod is not None
    state: dict[str, Any] = {"running": {"startedAt": now()}}
    if phase in ("Succeeded", "Failed"):
        state = {"terminated": {"exitCode": exit_code, "finishedAt": now(), "startedAt": now()}}
    pod["status"] = {
        "phase": phase,
        "podIP": "127.244.0.9",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now()}],
        "containerStatuses": [
            {"name": "main", "image": CONTAINER["image"], "imageID": "", "ready": ready, "restartCount": 0}
            | {"state": state}
        ],
    }
    cluster.replace(pods, "v1", NAMESPACE, name, pod, subresource="status")


def stateful_set(cluster: Cluster, replicas: int, when_scaled: str) -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "db"}},
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": when_scaled},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{**CONTAINER, "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]},
            },
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {}}}
            ],
        },
    }
    sets = cluster.registry.get("apps", "statefulsets")
    if cluster.find(sets, NAMESPACE, "db") is None:
        cluster.create(sets, "v1", NAMESPACE, body)
    else:
        current = cluster.find(sets, NAMESPACE, "db")
        assert current is not None
        current["spec"]["replicas"] = replicas
        cluster.replace(sets, "v1", NAMESPACE, "db", current)


def test_ordered_ready_starts_one_ordinal_at_a_time_and_scaling_down_may_delete_claims(cluster: Cluster) -> None:
    controller = StatefulSetController(cluster)
    stateful_set(cluster, 2, when_scaled="Delete")
    controller.reconcile([])
    assert names(cluster, "pods") == ["db-0"]  # db-1 waits for db-0 to be Running and Ready
    assert names(cluster, "persistentvolumeclaims") == ["data-db-0"]
    set_pod_status(cluster, "db-0", "Running", ready=False)
    controller.reconcile([])
    assert names(cluster, "pods") == ["db-0"]
    set_pod_status(cluster, "db-0", "Running", ready=True)
    controller.reconcile([])
    assert names(cluster, "pods") == ["db-0", "db-1"]
    pod = cluster.find(cluster.registry.get("", "pods"), NAMESPACE, "db-1")
    assert pod is not None
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("db-1", "db")
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}}]
    assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    set_pod_status(cluster, "db-1", "Running", ready=True)
    stateful_set(cluster, 1, when_scaled="Delete")
    controller.reconcile([])  # the unscheduled pod goes at once
    controller.reconcile([])
    assert names(cluster, "pods") == ["db-0"]
    assert names(cluster, "persistentvolumeclaims") == ["data-db-0"]


def job(cluster: Cluster, **spec: Any) -> None:
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "work"},
        "spec": {**spec, "template": {"spec": {"restartPolicy": "Never", "containers": [CONTAINER]}}},
    }
    cluster.create(cluster.registry.get("batch", "jobs"), "v1", NAMESPACE, body)


def job_status(cluster: Cluster) -> dict[str, Any]:
    found = cluster.find(cluster.registry.get("batch", "jobs"), NAMESPACE, "work")
    assert found is not None
    return found.get("status") or {}


def test_a_job_keeps_parallelism_pods_until_its_completions(cluster: Cluster) -> None:
    controller = JobController(cluster)
    job(cluster, completions=3, parallelism=2)
    controller.reconcile([])
    first = names(cluster, "pods")
    assert len(first) == 2 and all(name.startswith("work-") for name in first)
    for name in first:
        set_pod_status(cluster, name, "Succeeded")
    controller.reconcile([])
    assert len(names(cluster, "pods")) == 3  # one more for the third completion, not two
    assert job_status(cluster)["succeeded"] == 2 and job_status(cluster)["active"] == 1
    last = next(name for name in names(cluster, "pods") if name not in first)
    set_pod_status(cluster, last, "Succeeded")
    controller.reconcile([])
    status = job_status(cluster)
    assert status["succeeded"] == 3 and "active" not in status and status["completionTime"]
    assert [(c["type"], c["reason"]) for c in status["conditions"]] == [
        ("SuccessCriteriaMet", "CompletionsReached"),
        ("Complete", "CompletionsReached"),
    ]


def test_a_job_backs_off_after_a_failure_and_fails_past_its_limit(cluster: Cluster) -> None:
    controller = JobController(cluster)
    job(cluster, backoffLimit=1)
    controller.reconcile([])
    (first,) = names(cluster, "pods")
    set_pod_status(cluster, first, "Failed", exit_code=1)
    controller.reconcile([])
    assert names(cluster, "pods") == [first]  # the 10 s pod failure back-off has not passed
    assert job_status(cluster)["failed"] == 1 and "conditions" not in job_status(cluster)
    pods = cluster.registry.get("", "pods")
    failed = cluster.find(pods, NAMESPACE, first)
    assert failed is not None
    failed["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] = "2020-01-01T00:00:00Z"
    cluster.replace(pods, "v1", NAMESPACE, first, failed, subresource="status")
    controller.reconcile([])
    (second,) = [name for name in names(cluster, "pods") if name != first]
    set_pod_status(cluster, second, "Failed", exit_code=1)
    controller.reconcile([])
    status = job_status(cluster)
    assert status["failed"] == 2
    assert [(c["type"], c["reason"]) for c in status["conditions"]] == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
