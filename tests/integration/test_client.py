"""The official `kubernetes` Python client against localcluster: what the labs and checkers use."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import LocalCluster, eventually, running_cluster

NS = "bookstore"


@pytest.fixture(scope="module")
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def configmap(name: str, labels: dict[str, str] | None = None, **extra: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}, **extra},
        "data": {"k": "v"},
    }


def status_of(error: ApiException) -> dict:
    return json.loads(error.body)


def test_crud_and_server_metadata(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(NS, configmap("crud"))
    assert created.metadata.uid and created.metadata.creation_timestamp
    fetched = core.read_namespaced_config_map("crud", NS)
    assert fetched.metadata.resource_version == created.metadata.resource_version
    fetched.data = {"k": "changed"}
    replaced = core.replace_namespaced_config_map("crud", NS, fetched)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    core.delete_namespaced_config_map("crud", NS)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("crud", NS)
    assert missing.value.status == 404
    assert status_of(missing.value)["reason"] == "NotFound"


def test_create_twice_is_409_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, configmap("twice"))
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(NS, configmap("twice"))
    assert error.value.status == 409 and status_of(error.value)["reason"] == "AlreadyExists"


def test_generate_name(core: client.CoreV1Api) -> None:
    made = core.create_namespaced_config_map(NS, {"metadata": {"generateName": "gen-"}, "data": {}})
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == len("gen-") + 5


def test_stale_resource_version_is_a_conflict(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map(NS, configmap("occ"))
    core.patch_namespaced_config_map("occ", NS, {"data": {"k": "newer"}})
    first.data = {"k": "stale"}
    with pytest.raises(ApiException) as error:
        core.replace_namespaced_config_map("occ", NS, first)
    assert error.value.status == 409 and status_of(error.value)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("occ", NS).data == {"k": "newer"}


def test_label_selectors_with_every_operator(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, configmap("sel-a", {"tier": "web", "env": "prod", "rank": "3"}))
    core.create_namespaced_config_map(NS, configmap("sel-b", {"tier": "db", "env": "dev", "rank": "7"}))
    core.create_namespaced_config_map(NS, configmap("sel-c", {"tier": "web", "legacy": "yes"}))

    def names(selector: str) -> set[str]:
        items = core.list_namespaced_config_map(NS, label_selector=selector).items
        return {i.metadata.name for i in items if i.metadata.name.startswith("sel-")}

    assert names("tier=web") == {"sel-a", "sel-c"}
    assert names("tier==web,env=prod") == {"sel-a"}
    assert names("tier!=web,tier") == {"sel-b"}
    assert names("env in (prod,dev)") == {"sel-a", "sel-b"}
    assert names("tier,env notin (prod)") == {"sel-b", "sel-c"}
    assert names("legacy") == {"sel-c"}
    assert names("tier,!legacy") == {"sel-a", "sel-b"}
    assert names("rank>5") == {"sel-b"}
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(NS, label_selector="tier in web")
    assert bad.value.status == 400


def test_field_selectors(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, configmap("field-one"))
    items = core.list_namespaced_config_map(NS, field_selector="metadata.name=field-one").items
    assert [i.metadata.name for i in items] == ["field-one"]
    everywhere = core.list_config_map_for_all_namespaces(field_selector="metadata.namespace!=bookstore").items
    assert all(i.metadata.namespace != NS for i in everywhere)
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(NS, field_selector="data.k=v")
    assert bad.value.status == 400 and "field label not supported" in status_of(bad.value)["message"]


def test_pagination_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for index in range(7):
        core.create_namespaced_config_map(NS, configmap(f"page-{index}", {"paged": "yes"}))
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(NS, label_selector="paged", limit=3, _continue=token)
        seen += [i.metadata.name for i in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert seen == [f"page-{i}" for i in range(7)] and pages == 3


def test_validation_error_is_422_with_field_path(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    body = {
        "metadata": {"name": "Bad_Name"},
        "spec": {
            "replicas": -1,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "x", "image": "i"}, {"name": "x", "image": "i"}]},
            },
        },
    }
    with pytest.raises(ApiException) as error:
        apps.create_namespaced_deployment(NS, body)
    status = status_of(error.value)
    assert error.value.status == 422 and status["reason"] == "Invalid"
    fields = {cause["field"] for cause in status["details"]["causes"]}
    assert {"metadata.name", "spec.replicas", "spec.template.spec.containers[1].name"} <= fields


def test_every_patch_flavour(core: client.CoreV1Api, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    deployment = {
        "metadata": {"name": "patched"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {
                    "containers": [
                        {"name": "one", "image": "i", "env": [{"name": "A", "value": "1"}]},
                        {"name": "two", "image": "i"},
                    ]
                },
            },
        },
    }
    apps.create_namespaced_deployment(NS, deployment)
    # Strategic merge: containers merge by name, so "two" survives.
    strategic = {"spec": {"template": {"spec": {"containers": [{"name": "one", "image": "new"}]}}}}
    merged = apps.patch_namespaced_deployment("patched", NS, strategic)
    assert [c.name for c in merged.spec.template.spec.containers] == ["one", "two"]
    assert merged.spec.template.spec.containers[0].image == "new"
    assert merged.metadata.generation == 2
    # JSON merge patch: lists are replaced.
    apps.patch_namespaced_deployment(
        "patched", NS, {"metadata": {"labels": {"merged": "yes"}}}, _content_type="application/merge-patch+json"
    )
    # JSON patch (RFC 6902).
    json_patch = [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    apps.patch_namespaced_deployment("patched", NS, json_patch, _content_type="application/json-patch+json")
    after = apps.read_namespaced_deployment("patched", NS)
    assert after.metadata.labels == {"merged": "yes"} and after.spec.replicas == 4
    # Server-side apply with a field manager.
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"x": "1"}}
    result = core.patch_namespaced_config_map(
        "applied", NS, applied, field_manager="tests", _content_type="application/apply-patch+yaml"
    )
    assert result.data == {"x": "1"}
    assert any(m.manager == "tests" and m.operation == "Apply" for m in result.metadata.managed_fields)


def test_generation_bumps_on_spec_changes_only(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    body = {
        "metadata": {"name": "gens"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        },
    }
    apps.create_namespaced_deployment(NS, body)
    labelled = apps.patch_namespaced_deployment("gens", NS, {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    # /status writes status only (the deployment controller keeps collisionCount as it finds it).
    status = apps.patch_namespaced_deployment_status("gens", NS, {"status": {"collisionCount": 7}})
    assert status.metadata.generation == 1 and status.status.collision_count == 7
    scaled = apps.patch_namespaced_deployment_scale("gens", NS, {"spec": {"replicas": 5}})
    assert scaled.spec.replicas == 5
    assert apps.read_namespaced_deployment("gens", NS).metadata.generation == 2
    # The main resource ignores status.
    ignored = apps.patch_namespaced_deployment("gens", NS, {"status": {"collisionCount": 9}})
    assert ignored.status.collision_count == 7


def test_custom_objects_in_every_served_version(custom: client.CustomObjectsApi) -> None:
    vs = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
    }
    custom.create_namespaced_custom_object("networking.istio.io", "v1beta1", NS, "virtualservices", vs)
    as_v1 = custom.get_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", "reviews")
    assert as_v1["apiVersion"] == "networking.istio.io/v1" and as_v1["spec"]["hosts"] == ["reviews"]
    ksvc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/cloud-native-bookstore/workshop"}]}}},
    }
    made = custom.create_namespaced_custom_object("serving.knative.dev", "v1", NS, "services", ksvc)
    assert made["metadata"]["generation"] == 1
    listed = custom.list_namespaced_custom_object("serving.knative.dev", "v1", NS, "services")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["hello"]
    with pytest.raises(ApiException) as bad:
        custom.create_namespaced_custom_object(
            "networking.istio.io",
            "v1",
            NS,
            "virtualservices",
            {**vs, "apiVersion": "networking.istio.io/v1", "metadata": {"name": "bad"}, "spec": {"hosts": "reviews"}},
        )
    assert bad.value.status == 422 and status_of(bad.value)["details"]["causes"][0]["field"] == "spec.hosts"


def test_watch_resumes_from_a_resource_version(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    for index in range(50):
        core.create_namespaced_config_map(NS, configmap(f"burst-{index}", {"burst": "yes"}))
    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, NS, label_selector="burst", resource_version=start, timeout_seconds=2
    ):
        events.append((event["type"], event["object"].metadata.name))
    assert events == [("ADDED", f"burst-{i}") for i in range(50)]


def test_watch_sees_objects_leave_a_label_selection(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, configmap("leaver", {"team": "a"}))
    start = core.read_namespaced_config_map("leaver", NS).metadata.resource_version
    core.patch_namespaced_config_map("leaver", NS, {"metadata": {"labels": {"team": "b"}}})
    events = [
        event["type"]
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, NS, label_selector="team=a", resource_version=start, timeout_seconds=1
        )
    ]
    assert events == ["DELETED"]


def test_watch_bookmarks_and_initial_events(core: client.CoreV1Api, cluster: LocalCluster) -> None:
    core.create_namespaced_config_map(NS, configmap("initial", {"initial": "yes"}))
    params = {
        "watch": "true",
        "labelSelector": "initial",
        "sendInitialEvents": "true",
        "allowWatchBookmarks": "true",
        "resourceVersionMatch": "NotOlderThan",
        "timeoutSeconds": "1",
    }
    with cluster.http() as http:
        response = http.get(f"/api/v1/namespaces/{NS}/configmaps", params=params)
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    assert lines[0]["type"] == "ADDED" and lines[0]["object"]["metadata"]["name"] == "initial"
    assert lines[1]["type"] == "BOOKMARK"
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_from_a_compacted_version_is_410(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "home", LOCALCLUSTER_WATCH_HISTORY="5") as cluster, cluster.api_client() as api:
        core = client.CoreV1Api(api)
        old = core.list_namespaced_config_map(NS).metadata.resource_version
        for index in range(10):
            core.create_namespaced_config_map(NS, configmap(f"compact-{index}"))
        with pytest.raises(ApiException) as gone:
            list(watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=old, timeout_seconds=1))
        assert gone.value.status == 410
        assert status_of(gone.value)["reason"] == "Expired"


def test_watch_delivers_concurrent_writes_in_order(core: client.CoreV1Api, cluster: LocalCluster) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    writers = []
    for worker in range(4):

        def write(worker: int = worker) -> None:
            with cluster.api_client() as own:
                own_core = client.CoreV1Api(own)
                for index in range(25):
                    own_core.create_namespaced_config_map(NS, configmap(f"conc-{worker}-{index}", {"conc": "y"}))

        writers.append(threading.Thread(target=write))
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    versions = [
        int(event["object"].metadata.resource_version)
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, NS, label_selector="conc", resource_version=start, timeout_seconds=2
        )
    ]
    assert len(versions) == 100 and versions == sorted(versions)


def test_finalizers_hold_deletion_until_removed(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, configmap("held", finalizers=["example.com/hold"]))
    core.delete_namespaced_config_map("held", NS)
    held = core.read_namespaced_config_map("held", NS)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("held", NS)
    assert gone.value.status == 404


def _owned(core: client.CoreV1Api, owner_name: str, child_name: str, block: bool = False) -> None:
    owner = core.create_namespaced_config_map(NS, configmap(owner_name))
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner_name,
        "uid": owner.metadata.uid,
        "blockOwnerDeletion": block,
    }
    core.create_namespaced_config_map(NS, configmap(child_name, ownerReferences=[reference]))


def _exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_config_map(name, NS)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_background_deletion_collects_dependents(core: client.CoreV1Api) -> None:
    _owned(core, "owner-bg", "child-bg")
    core.delete_namespaced_config_map("owner-bg", NS, propagation_policy="Background")
    assert not _exists(core, "owner-bg")
    eventually(lambda: not _exists(core, "child-bg"), "the garbage collector to delete child-bg")


def test_foreground_deletion_waits_for_blocking_dependents(core: client.CoreV1Api) -> None:
    _owned(core, "owner-fg", "child-fg", block=True)
    core.patch_namespaced_config_map("child-fg", NS, {"metadata": {"finalizers": ["example.com/slow"]}})
    core.delete_namespaced_config_map("owner-fg", NS, propagation_policy="Foreground")
    owner = eventually(lambda: core.read_namespaced_config_map("owner-fg", NS), "the owner to be terminating")
    assert "foregroundDeletion" in owner.metadata.finalizers
    eventually(
        lambda: core.read_namespaced_config_map("child-fg", NS).metadata.deletion_timestamp,
        "the dependent to be deleted first",
    )
    assert _exists(core, "owner-fg")
    core.patch_namespaced_config_map("child-fg", NS, {"metadata": {"finalizers": None}})
    eventually(lambda: not _exists(core, "owner-fg"), "the owner to go once its dependent is gone")


def test_orphan_deletion_keeps_dependents(core: client.CoreV1Api) -> None:
    _owned(core, "owner-or", "child-or")
    core.delete_namespaced_config_map("owner-or", NS, propagation_policy="Orphan")
    eventually(lambda: not _exists(core, "owner-or"), "the orphaning owner to go")
    child = core.read_namespaced_config_map("child-or", NS)
    assert not child.metadata.owner_references


def test_namespace_deletion_empties_it(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "scratch"}})
    eventually(lambda: core.list_namespaced_service_account("scratch").items, "the default ServiceAccount")
    core.create_namespaced_config_map("scratch", configmap("inside"))
    core.delete_namespace("scratch")
    eventually(
        lambda: not [n for n in core.list_namespace().items if n.metadata.name == "scratch"],
        "the namespace to be emptied and removed",
    )
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map("scratch", configmap("late"))
    assert error.value.status == 404


def test_a_wrong_token_gets_401_and_no_token_is_anonymous(cluster: LocalCluster) -> None:
    with cluster.http(authenticated=False) as http:
        anonymous = http.get("/api/v1/namespaces")
        wrong = http.get("/api/v1/namespaces", headers={"Authorization": "Bearer wrong"})
        public = http.get("/version")
    assert wrong.status_code == 401
    assert wrong.json()["kind"] == "Status" and wrong.json()["reason"] == "Unauthorized"
    # As a kind cluster (anonymous auth on): RBAC lets system:anonymous read /version, nothing else.
    assert anonymous.status_code == 403 and anonymous.json()["reason"] == "Forbidden"
    assert anonymous.json()["message"] == (
        'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" in API group "" '
        "at the cluster scope"
    )
    assert public.status_code == 200 and public.json()["major"] == "1"
