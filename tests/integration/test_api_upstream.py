"""Smaller answers of the API that clients read: delete results, error details, new objects' status,
metadata-only lists, resourceVersions from the future, and claims as `kubectl describe` shows them."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.conftest import LocalCluster, poll_until

NS = "/api/v1/namespaces/bookstore"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


@pytest.fixture(scope="module")
def http(cluster: LocalCluster):
    with cluster.http() as client:
        yield client


def _configmap(http: httpx.Client, name: str, **metadata: object) -> dict:
    created = http.post(f"{NS}/configmaps", json={"metadata": {"name": name, **metadata}, "data": {"a": "1"}})
    assert created.status_code == 201, created.text
    return created.json()


def test_delete_answers_a_status_or_the_object_as_each_upstream_registry_does(http: httpx.Client) -> None:
    uid = _configmap(http, "goes")["metadata"]["uid"]
    gone = http.delete(f"{NS}/configmaps/goes")
    assert gone.status_code == 200
    assert gone.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "goes", "kind": "configmaps", "uid": uid},
    }
    service = {"metadata": {"name": "doomed"}, "spec": {"ports": [{"port": 80}]}}
    assert http.post(f"{NS}/services", json=service).status_code == 201
    deleted = http.delete(f"{NS}/services/doomed")
    assert deleted.status_code == 200 and deleted.json()["kind"] == "Service"  # ReturnDeletedObject


def test_delete_pending_finalizers_is_202_only_for_orphan_dependents_false(http: httpx.Client) -> None:
    _configmap(http, "held", finalizers=["example.com/hold"])
    pending = http.delete(f"{NS}/configmaps/held", params={"orphanDependents": "false"})
    assert pending.status_code == 202
    assert pending.json()["kind"] == "ConfigMap" and pending.json()["metadata"]["deletionTimestamp"]
    patched = http.patch(
        f"{NS}/configmaps/held",
        json={"metadata": {"finalizers": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200
    assert http.get(f"{NS}/configmaps/held").status_code == 404


def test_not_found_always_has_details_and_core_errors_no_group(http: httpx.Client) -> None:
    missing = http.get(f"{NS}/configmaps/nowhere").json()
    assert missing["details"] == {"name": "nowhere", "kind": "configmaps"}
    unknown = http.get("/api/v1/nothings").json()
    assert unknown["reason"] == "NotFound" and unknown["details"] == {}
    apps = http.get("/apis/apps/v1/namespaces/bookstore/deployments/nowhere").json()
    assert apps["details"] == {"name": "nowhere", "group": "apps", "kind": "deployments"}


def test_kubectl_debug_with_an_ephemeral_container_says_what_the_cluster_lacks(cluster: LocalCluster) -> None:
    """kubectl reads `details.name` of the 404 on pods/ephemeralcontainers; without details it panicked."""
    cluster.kubectl("run", "debugged", "--image=busybox", "--restart=Never")
    result = cluster.kubectl("debug", "debugged", "--image=busybox", check=False)
    assert result.returncode == 1
    assert "ephemeral containers are disabled for this cluster" in result.stderr
    assert "panic" not in result.stderr
    cluster.kubectl("delete", "pod", "debugged", "--wait=false")


def test_a_create_answers_with_the_status_upstream_shows(http: httpx.Client) -> None:
    service = http.post(f"{NS}/services", json={"metadata": {"name": "shown"}, "spec": {"ports": [{"port": 80}]}})
    assert service.json()["status"] == {"loadBalancer": {}}
    deployment = {
        "metadata": {"name": "shown"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "shown"}},
            "template": {
                "metadata": {"labels": {"app": "shown"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    created = http.post("/apis/apps/v1/namespaces/bookstore/deployments", json=deployment)
    assert created.status_code == 201 and created.json()["status"] == {}
    claim = {
        "metadata": {"name": "shown"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    assert http.post(f"{NS}/persistentvolumeclaims", json=claim).json()["status"] == {"phase": "Pending"}
    for path in ("services/shown", "persistentvolumeclaims/shown"):
        http.delete(f"{NS}/{path}")
    http.delete("/apis/apps/v1/namespaces/bookstore/deployments/shown")


def test_metadata_only_lists_and_unknown_conversions(http: httpx.Client) -> None:
    _configmap(http, "listed", labels={"tier": "meta"})
    listed = http.get(f"{NS}/configmaps", params={"labelSelector": "tier=meta"}, headers={"Accept": METADATA_LIST})
    assert listed.status_code == 200
    body = listed.json()
    assert body["kind"] == "PartialObjectMetadataList" and body["apiVersion"] == "meta.k8s.io/v1"
    [item] = body["items"]
    assert item["kind"] == "PartialObjectMetadata" and item["metadata"]["name"] == "listed"
    assert "data" not in item
    one = http.get(f"{NS}/configmaps/listed", headers={"Accept": METADATA_LIST.replace("List", "")})
    assert one.json()["kind"] == "PartialObjectMetadata"
    bogus = "application/json;as=Bogus;g=meta.k8s.io;v=v1"
    refused = http.get(f"{NS}/configmaps", headers={"Accept": bogus})
    assert refused.status_code == 406 and refused.json()["reason"] == "NotAcceptable"
    fallback = http.get(f"{NS}/configmaps", headers={"Accept": f"{bogus}, application/json"})
    assert fallback.json()["kind"] == "ConfigMapList"
    http.delete(f"{NS}/configmaps/listed")


def test_a_resource_version_from_the_future_is_refused_not_waited_on_forever(http: httpx.Client) -> None:
    current = int(http.get(f"{NS}/configmaps").json()["metadata"]["resourceVersion"])
    future = str(current + 100_000)
    watched = http.get(f"{NS}/configmaps", params={"watch": "true", "resourceVersion": future})
    assert watched.status_code == 504
    status = watched.json()
    assert status["reason"] == "Timeout" and status["message"].startswith(f"Too large resource version: {future}")
    assert status["details"]["causes"] == [
        {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
    ]
    listed = http.get(f"{NS}/configmaps", params={"resourceVersion": future})
    assert listed.status_code == 504


def test_describe_pvc_shows_the_bound_volume_and_capacity(cluster: LocalCluster, http: httpx.Client) -> None:
    claim = {
        "metadata": {"name": "described"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    http.post(f"{NS}/persistentvolumeclaims", json=claim)
    pod = {
        "metadata": {"name": "claims-it"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "described"}}],
        },
    }
    http.post(f"{NS}/pods", json=pod)
    bound = poll_until(
        lambda: http.get(f"{NS}/persistentvolumeclaims/described").json(),
        lambda c: c["status"]["phase"] == "Bound",
        "the claim bound to its first consumer",
    )
    assert bound["spec"]["volumeName"] == f"pvc-{bound['metadata']['uid']}"
    described = cluster.kubectl("describe", "pvc", "described").stdout
    assert re.search(r"Capacity:\s+2Gi", described), described
    assert re.search(rf"Volume:\s+pvc-{bound['metadata']['uid']}", described), described
    http.delete(f"{NS}/pods/claims-it", params={"gracePeriodSeconds": "0"})
    http.delete(f"{NS}/persistentvolumeclaims/described")
