"""batch/v1 Jobs and apps/v1 StatefulSets against a real localcluster, with kubectl 1.37 and the
official Python client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, AppsV1Api, BatchV1Api, CoreV1Api

from localcluster.settings import PROJECT_IMAGE
from tests.integration.conftest import LocalCluster, poll_until

pytestmark = pytest.mark.integration

NAMESPACE = "bookstore"


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


HTTP_SERVER = str(Path(__file__).parent / "podprograms" / "http_server.py")
#: A pod's own HTTP GET through the service proxy (HTTP_PROXY), printing the body.
FETCH = "import urllib.request, sys; f = lambda url: sys.stdout.write(urllib.request.urlopen(url).read().decode()); f"


def stateful_set(replicas: int) -> list[dict[str, Any]]:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ledger"},
        "spec": {"clusterIP": "None", "selector": {"app": "ledger"}, "ports": [{"name": "http", "port": 8080}]},
    }
    container = {
        "name": "main",
        "image": PROJECT_IMAGE,
        "command": ["python", HTTP_SERVER],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    workload = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "ledger"},
        "spec": {
            "serviceName": "ledger",
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "ledger"}},
            "template": {"metadata": {"labels": {"app": "ledger"}}, "spec": {"containers": [container]}},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }
            ],
        },
    }
    return [service, workload]


def apply(cluster: LocalCluster, documents: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in documents))


def test_a_stateful_set_starts_in_order_with_a_claim_per_ordinal(cluster: LocalCluster, api: ApiClient) -> None:
    core = CoreV1Api(api)
    apply(cluster, stateful_set(2))
    cluster.kubectl("rollout", "status", "statefulset/ledger", "--timeout=90s")
    pods = {p.metadata.name: p for p in core.list_namespaced_pod(NAMESPACE, label_selector="app=ledger").items}
    assert sorted(pods) == ["ledger-0", "ledger-1"]
    # OrderedReady: ledger-1 was created only once ledger-0 was Ready.
    ready_0 = next(c for c in pods["ledger-0"].status.conditions if c.type == "Ready").last_transition_time
    assert pods["ledger-1"].metadata.creation_timestamp >= ready_0
    for ordinal, pod in enumerate(sorted(pods.values(), key=lambda p: p.metadata.name)):
        assert pod.metadata.labels["statefulset.kubernetes.io/pod-name"] == f"ledger-{ordinal}"
        assert pod.metadata.labels["apps.kubernetes.io/pod-index"] == str(ordinal)
        assert (pod.spec.hostname, pod.spec.subdomain) == (f"ledger-{ordinal}", "ledger")
        claim = core.read_namespaced_persistent_volume_claim(f"data-ledger-{ordinal}", NAMESPACE)
        assert claim.status.phase == "Bound"
        assert [v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim] == [
            f"data-ledger-{ordinal}"
        ]
    status = AppsV1Api(api).read_namespaced_stateful_set("ledger", NAMESPACE).status
    assert (status.replicas, status.ready_replicas, status.updated_replicas) == (2, 2, 2)
    assert status.current_revision == status.update_revision and status.update_revision.startswith("ledger-")
    assert "2/2" in cluster.kubectl("get", "statefulset", "ledger").stdout


def test_a_stateful_pods_claim_outlives_it(cluster: LocalCluster, api: ApiClient) -> None:
    core = CoreV1Api(api)
    cluster.kubectl("exec", "-i", "ledger-1", "--", "tee", "/data/ledger.txt", input="balance=42\n")
    old_uid = core.read_namespaced_pod("ledger-1", NAMESPACE).metadata.uid
    cluster.kubectl("delete", "pod", "ledger-1", "--wait=true")
    poll_until(
        lambda: core.read_namespaced_pod("ledger-1", NAMESPACE) if _exists(core, "ledger-1") else None,
        lambda pod: pod is not None and pod.metadata.uid != old_uid and pod.status.phase == "Running",
        "ledger-1 to be recreated",
        timeout=60,
    )
    cluster.kubectl("wait", "--for=condition=Ready", "pod/ledger-1", "--timeout=60s")
    assert cluster.kubectl("exec", "ledger-1", "--", "cat", "/data/ledger.txt").stdout == "balance=42\n"


def test_a_stateful_pod_is_reachable_by_its_stable_name(cluster: LocalCluster) -> None:
    for name in ("ledger-0.ledger", "ledger-1.ledger.bookstore", "ledger-1.ledger.bookstore.svc.cluster.local"):
        result = cluster.kubectl("exec", "ledger-0", "--", "python", "-c", f"{FETCH}('http://{name}:8080/')")
        assert result.stdout == name.split(".")[0], name  # the pod answers with its own name


def test_a_stateful_set_rolls_and_scales_down_from_the_top(cluster: LocalCluster, api: ApiClient) -> None:
    core = CoreV1Api(api)
    before = {
        p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(NAMESPACE, label_selector="app=ledger").items
    }
    cluster.kubectl(
        "patch",
        "statefulset",
        "ledger",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"template": {"metadata": {"annotations": {"rollout": "2"}}}}}),
    )
    cluster.kubectl("rollout", "status", "statefulset/ledger", "--timeout=120s")
    after = {
        p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(NAMESPACE, label_selector="app=ledger").items
    }
    assert sorted(after) == sorted(before) and all(after[name] != before[name] for name in before)
    cluster.kubectl("scale", "statefulset", "ledger", "--replicas=1")
    poll_until(
        lambda: sorted(p.metadata.name for p in core.list_namespaced_pod(NAMESPACE, label_selector="app=ledger").items),
        lambda names: names == ["ledger-0"],
        "ledger-1 to be removed",
        timeout=60,
    )
    # Retain: the scaled-down ordinal's claim stays for when it comes back.
    assert core.read_namespaced_persistent_volume_claim("data-ledger-1", NAMESPACE).status.phase == "Bound"


def _exists(core: CoreV1Api, name: str) -> bool:
    return any(p.metadata.name == name for p in core.list_namespaced_pod(NAMESPACE).items)
