"""The request pipeline in-process (no HTTP): the rules every writer shares."""

from __future__ import annotations

import pytest

from localcluster.api.cluster import Cluster, WriteOptions
from localcluster.api.errors import BadRequest, Forbidden, NotFound


def pod(name: str = "p") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"},
    }


def test_bootstrap_makes_the_workshop_namespaces(cluster: Cluster) -> None:
    namespaces = cluster.registry.get("", "namespaces")
    names = {e.obj["metadata"]["name"] for e in cluster.store.list(namespaces.key)[0]}
    assert {"default", "bookstore", "kube-system"} <= names


def test_create_resets_status_and_defaults_the_pod(cluster: Cluster) -> None:
    pods = cluster.registry.get("", "pods")
    created = cluster.create(pods, "v1", "bookstore", pod()).obj
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert created["spec"]["restartPolicy"] == "Always" and created["metadata"]["generation"] == 1


def test_dry_run_stores_nothing(cluster: Cluster) -> None:
    pods = cluster.registry.get("", "pods")
    version = cluster.store.resource_version
    written = cluster.create(pods, "v1", "bookstore", pod("dry"), WriteOptions(dry_run=True))
    assert written.obj["metadata"]["name"] == "dry"
    assert cluster.find(pods, "bookstore", "dry") is None and cluster.store.resource_version == version


def test_no_op_update_keeps_the_resource_version(cluster: Cluster) -> None:
    pods = cluster.registry.get("", "pods")
    created = cluster.create(pods, "v1", "bookstore", pod()).obj
    again = cluster.replace(pods, "v1", "bookstore", "p", cluster.get(pods, "bookstore", "p")).obj
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_unknown_namespace_is_404_and_terminating_namespace_is_403(cluster: Cluster) -> None:
    pods = cluster.registry.get("", "pods")
    namespaces = cluster.registry.get("", "namespaces")
    with pytest.raises(NotFound, match='namespaces "nowhere" not found'):
        cluster.create(pods, "v1", "nowhere", pod())
    cluster.create(namespaces, "v1", "", {"metadata": {"name": "leaving"}})
    cluster.delete(namespaces, "", "leaving")
    with pytest.raises(Forbidden, match="being terminated"):
        cluster.create(pods, "v1", "leaving", pod())
    with pytest.raises(Forbidden):
        cluster.delete(namespaces, "", "default")


def test_a_scheduled_pod_is_deleted_gracefully(cluster: Cluster) -> None:
    pods = cluster.registry.get("", "pods")
    scheduled = pod("graceful")
    scheduled["spec"]["nodeName"] = "localcluster"
    cluster.create(pods, "v1", "bookstore", scheduled)
    obj, gone = cluster.delete(pods, "bookstore", "graceful")
    assert not gone and obj["metadata"]["deletionGracePeriodSeconds"] == 30
    assert cluster.find(pods, "bookstore", "graceful") is not None
    cluster.finish_deletion(pods, "bookstore", "graceful")
    assert cluster.find(pods, "bookstore", "graceful") is None


def test_body_must_match_the_url(cluster: Cluster) -> None:
    pods = cluster.registry.get("", "pods")
    with pytest.raises(BadRequest, match="does not match the namespace"):
        cluster.create(pods, "v1", "bookstore", {**pod(), "metadata": {"name": "p", "namespace": "default"}})
    with pytest.raises(BadRequest, match="kind in the data"):
        cluster.create(pods, "v1", "bookstore", {**pod(), "kind": "Service"})


def test_events_fold_repeats_into_a_count(cluster: Cluster) -> None:
    pods = cluster.registry.get("", "pods")
    created = cluster.create(pods, "v1", "bookstore", pod()).obj
    for _ in range(3):
        cluster.record_event(created, "BackOff", "Back-off restarting failed container", event_type="Warning")
    events = cluster.store.list("core/events", "bookstore")[0]
    assert len(events) == 1 and events[0].obj["count"] == 3 and events[0].obj["type"] == "Warning"
