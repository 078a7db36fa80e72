"""Server-side apply and managedFields, with scenarios from structured-merge-diff's and kubectl's behaviour."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localcluster.api.apply import decode_apply_body, fields_v1, record_update, server_side_apply
from localcluster.api.errors import BadRequest, Conflict
from localcluster.api.resources import ResourceRegistry, ResourceType
from localcluster.api.schemas import SchemaIndex


@pytest.fixture(scope="module")
def deployments(registry: ResourceRegistry) -> ResourceType:
    return registry.get("apps", "deployments")


class Server:
    """Applies and updates one kind the way the request pipeline will, one clock tick per write."""

    def __init__(self, index: SchemaIndex, resource_type: ResourceType) -> None:
        self.index = index
        self.resource_type = resource_type
        self.clock = 0

    def now(self) -> str:
        self.clock += 1
        return f"2026-01-01T00:00:{self.clock:02d}Z"

    def apply(
        self,
        current: dict[str, Any] | None,
        applied: dict[str, Any],
        manager: str = "kubectl",
        *,
        force: bool = False,
        subresource: str = "",
    ) -> dict[str, Any]:
        before = copy.deepcopy((current, applied))
        result = server_side_apply(
            current,
            applied,
            manager=manager,
            force=force,
            index=self.index,
            resource_type=self.resource_type,
            version=self.resource_type.storage_version,
            now=self.now(),
            subresource=subresource,
        )
        assert (current, applied) == before, "server_side_apply mutated its arguments"
        return result

    def update(
        self, old: dict[str, Any] | None, new: dict[str, Any], manager: str, *, subresource: str = ""
    ) -> dict[str, Any]:
        new = copy.deepcopy(new)
        record_update(
            old,
            new,
            manager=manager,
            subresource=subresource,
            index=self.index,
            resource_type=self.resource_type,
            version=self.resource_type.storage_version,
            now=self.now(),
        )
        return new


@pytest.fixture
def server(index: SchemaIndex, deployments: ResourceType) -> Server:
    return Server(index, deployments)


def config(replicas: int | None = 2, image: str = "web:1", **extra_container: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image, **extra_container}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": spec,
    }


def entries(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["manager"]: entry for entry in obj["metadata"]["managedFields"]}


def owned(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    return entries(obj)[manager]["fieldsV1"]


def container(obj: dict[str, Any], position: int = 0) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][position]


def with_replicas(obj: dict[str, Any], replicas: int) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    changed["spec"]["replicas"] = replicas
    return changed


# --- create, no-op, update -------------------------------------------------------------------------


def test_create_records_the_applied_fields(server: Server) -> None:
    created = server.apply(None, config(ports=[{"containerPort": 80}]))
    assert created["spec"]["replicas"] == 2
    [entry] = created["metadata"]["managedFields"]
    assert {k: v for k, v in entry.items() if k != "fieldsV1"} == {
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": "2026-01-01T00:00:01Z",
        "fieldsType": "FieldsV1",
    }
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"web"}': {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                        }
                    }
                },
            },
        },
    }


def test_applying_the_same_configuration_again_changes_nothing(server: Server) -> None:
    created = server.apply(None, config())
    again = server.apply(created, config())
    assert again == created
    assert entries(again)["kubectl"]["time"] == "2026-01-01T00:00:01Z"


def test_an_apply_that_changes_the_object_bumps_the_time(server: Server) -> None:
    created = server.apply(None, config())
    changed = server.apply(created, config(image="web:2"))
    assert container(changed)["image"] == "web:2"
    assert entries(changed)["kubectl"]["time"] == "2026-01-01T00:00:02Z"


def test_fields_other_writers_set_survive_an_apply(server: Server) -> None:
    created = server.apply(None, config())
    annotated = copy.deepcopy(created)
    annotated["metadata"]["annotations"] = {"note": "kept"}
    annotated = server.update(created, annotated, "kubectl-annotate")
    applied = server.apply(annotated, config(image="web:2"))
    assert applied["metadata"]["annotations"] == {"note": "kept"}
    assert set(entries(applied)) == {"kubectl", "kubectl-annotate"}


def test_the_live_object_keeps_server_set_metadata(server: Server) -> None:
    created = server.apply(None, config())
    created["metadata"].update(uid="u-1", resourceVersion="7", creationTimestamp="2026-01-01T00:00:00Z")
    applied = server.apply(created, config(image="web:2"))
    assert applied["metadata"]["uid"] == "u-1"
    assert applied["metadata"]["resourceVersion"] == "7"
    assert "f:uid" not in str(owned(applied, "kubectl"))


# --- conflicts and force ---------------------------------------------------------------------------


def test_changing_a_field_another_manager_owns_conflicts(server: Server) -> None:
    created = server.apply(None, config(replicas=2))
    scaled = server.update(created, with_replicas(created, 5), "kubectl-client-side-apply")
    with pytest.raises(Conflict) as caught:
        server.apply(scaled, config(replicas=3))
    error = caught.value
    assert error.code == 409
    assert error.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )
    [cause] = error.causes
    assert (cause.field, cause.reason) == (".spec.replicas", "FieldManagerConflict")
    assert cause.message == 'conflict with "kubectl-client-side-apply" using apps/v1'


def test_applying_the_value_another_manager_set_shares_ownership(server: Server) -> None:
    created = server.apply(None, config(replicas=2))
    scaled = server.update(created, with_replicas(created, 5), "scaler")
    shared = server.apply(scaled, config(replicas=5))
    assert owned(shared, "kubectl")["f:spec"]["f:replicas"] == {}
    assert owned(shared, "scaler")["f:spec"]["f:replicas"] == {}


def test_conflicts_with_several_managers_are_listed_per_manager(server: Server) -> None:
    created = server.apply(None, config(replicas=2))
    scaled = server.update(created, with_replicas(created, 5), "b-scaler")
    imaged = copy.deepcopy(scaled)
    container(imaged)["image"] = "web:9"
    imaged = server.update(scaled, imaged, "a-imager")
    with pytest.raises(Conflict) as caught:
        server.apply(imaged, config(replicas=3, image="web:3"), "other")
    assert caught.value.message == (
        "Apply failed with 2 conflicts: "
        'conflicts with "a-imager" using apps/v1:\n- .spec.template.spec.containers[name="web"].image\n'
        'conflicts with "b-scaler" using apps/v1:\n- .spec.replicas'
    )
    assert [c.field for c in caught.value.causes] == [
        '.spec.template.spec.containers[name="web"].image',
        ".spec.replicas",
    ]


def test_conflicts_between_appliers_name_the_applier_only(server: Server) -> None:
    created = server.apply(None, config(replicas=2), "team-a")
    with pytest.raises(Conflict, match=r'^Apply failed with 1 conflict: conflict with "team-a": \.spec\.replicas$'):
        server.apply(created, config(replicas=4), "team-b")


def test_force_moves_ownership_to_the_applier(server: Server) -> None:
    created = server.apply(None, config(replicas=2))
    scaled = server.update(created, with_replicas(created, 5), "scaler")
    forced = server.apply(scaled, config(replicas=3), force=True)
    assert forced["spec"]["replicas"] == 3
    assert set(entries(forced)) == {"kubectl"}, "the scaler owned nothing else and is gone"
    assert owned(forced, "kubectl")["f:spec"]["f:replicas"] == {}


def test_force_keeps_the_other_managers_remaining_fields(server: Server) -> None:
    created = server.apply(None, config(replicas=2))
    changed = with_replicas(created, 5)
    changed["metadata"]["annotations"] = {"by": "scaler"}
    scaled = server.update(created, changed, "scaler")
    forced = server.apply(scaled, config(replicas=3), force=True)
    assert owned(forced, "scaler") == {"f:metadata": {"f:annotations": {".": {}, "f:by": {}}}}


def test_an_apply_to_an_object_without_managed_fields_conflicts_with_what_was_there(server: Server) -> None:
    legacy = config(replicas=7)
    with pytest.raises(Conflict, match=r'"before-first-apply" using apps/v1: \.spec\.replicas'):
        server.apply(legacy, config(replicas=2))
    applied = server.apply(legacy, config(replicas=7, image="web:1"))
    assert set(entries(applied)) == {"kubectl", "before-first-apply"}


# --- removing fields -------------------------------------------------------------------------------


def test_fields_no_longer_applied_are_removed(server: Server) -> None:
    created = server.apply(
        None, config(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], args=["--port", "80"])
    )
    trimmed = server.apply(created, config(env=[{"name": "B", "value": "2"}]))
    assert container(trimmed)["env"] == [{"name": "B", "value": "2"}]
    assert "args" not in container(trimmed)
    web = owned(trimmed, "kubectl")["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert set(web["f:env"]) == {'k:{"name":"B"}'}
    assert "f:args" not in web


def test_fields_no_longer_applied_but_owned_by_others_stay(server: Server) -> None:
    created = server.apply(None, config(replicas=2))
    shared = server.update(created, with_replicas(created, 2), "noop")  # changes nothing: owns nothing
    assert set(entries(shared)) == {"kubectl"}
    scaled = server.update(shared, with_replicas(shared, 4), "scaler")
    applied = server.apply(scaled, config(replicas=None), force=False)
    assert applied["spec"]["replicas"] == 4
    assert "f:replicas" not in owned(applied, "kubectl")["f:spec"]


def test_fields_nobody_owned_are_not_removed(server: Server) -> None:
    created = server.apply(None, config())
    defaulted = copy.deepcopy(created)
    defaulted["spec"]["revisionHistoryLimit"] = 10  # as the apiserver's defaulting writes, owned by no one
    applied = server.apply(defaulted, config(replicas=None))
    assert applied["spec"]["revisionHistoryLimit"] == 10
    assert "replicas" not in applied["spec"]


def test_a_removed_list_item_goes_with_its_fields(server: Server) -> None:
    two = config()
    two["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "side:1"})
    created = server.apply(None, two)
    applied = server.apply(created, config())
    assert [c["name"] for c in applied["spec"]["template"]["spec"]["containers"]] == ["web"]


# --- merging by schema -----------------------------------------------------------------------------


def test_map_lists_merge_by_key_and_keep_other_managers_items(server: Server) -> None:
    created = server.apply(None, config())
    with_sidecar = copy.deepcopy(created)
    with_sidecar["spec"]["template"]["spec"]["containers"].append({"name": "mesh", "image": "proxy:1"})
    injected = server.update(created, with_sidecar, "injector")
    applied = server.apply(injected, config(image="web:2"))
    assert [(c["name"], c["image"]) for c in applied["spec"]["template"]["spec"]["containers"]] == [
        ("web", "web:2"),
        ("mesh", "proxy:1"),
    ]


def test_atomic_lists_are_replaced_and_owned_whole(server: Server) -> None:
    created = server.apply(None, config(args=["a", "b"]))
    applied = server.apply(created, config(args=["c"]))
    assert container(applied)["args"] == ["c"]
    web = owned(applied, "kubectl")["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert web["f:args"] == {}


def test_atomic_maps_are_replaced(server: Server) -> None:
    created = server.apply(None, config())
    selector = config()
    selector["spec"]["selector"] = {"matchLabels": {"tier": "x"}}
    applied = server.apply(created, selector)
    assert applied["spec"]["selector"] == {"matchLabels": {"tier": "x"}}


def test_set_lists_merge_as_sets(server: Server) -> None:
    created = server.apply(None, {**config(), "metadata": {"name": "web", "finalizers": ["a"]}})
    applied = server.apply(created, {**config(), "metadata": {"name": "web", "finalizers": ["b"]}}, "other")
    assert applied["metadata"]["finalizers"] == ["a", "b"]
    assert owned(applied, "other")["f:metadata"]["f:finalizers"] == {'v:"b"': {}}


def test_status_is_ignored_through_the_main_resource(server: Server) -> None:
    created = server.apply(None, {**config(), "status": {"replicas": 9}})
    assert "status" not in created
    assert "f:status" not in owned(created, "kubectl")


def test_status_is_applied_through_the_status_subresource(server: Server) -> None:
    created = server.apply(None, config())
    status = {**config(replicas=99), "status": {"replicas": 2}}
    status["metadata"]["labels"] = {"app": "changed"}
    applied = server.apply(created, status, "controller", subresource="status")
    assert applied["status"] == {"replicas": 2}
    assert applied["spec"]["replicas"] == 2
    assert applied["metadata"]["labels"] == {"app": "web"}
    entry = entries(applied)["controller"]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


@pytest.mark.parametrize("plural", ["namespaces", "serviceaccounts", "configmaps"])
def test_an_object_with_nothing_but_a_name_applies_with_no_manager_entry(
    index: SchemaIndex, registry: ResourceRegistry, plural: str
) -> None:
    bare_server = Server(index, registry.get("", plural))
    kind = bare_server.resource_type.kind
    bare = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "bare"}}
    created = bare_server.apply(None, bare)
    assert "managedFields" not in created["metadata"]  # upstream drops a manager that owns nothing
    assert bare_server.apply(created, bare) == created


def test_a_bare_apply_over_a_client_side_apply_keeps_the_other_writers_fields(
    index: SchemaIndex, registry: ResourceRegistry
) -> None:
    bare_server = Server(index, registry.get("", "namespaces"))
    bare = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    annotated = {**bare, "metadata": {"name": "shop", "annotations": {"last-applied": "{}"}}}
    live = bare_server.update(None, annotated, "kubectl-client-side-apply")
    applied = bare_server.apply(live, bare)
    assert applied["metadata"]["annotations"] == {"last-applied": "{}"}
    assert set(entries(applied)) == {"kubectl-client-side-apply"}
    assert bare_server.apply(applied, bare) == applied


def test_custom_kinds_apply_by_their_crd_schema(index: SchemaIndex, registry: ResourceRegistry) -> None:
    server = Server(index, registry.get("serving.knative.dev", "services"))
    knative = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "stock"},
        "spec": {
            "template": {"spec": {"containers": [{"image": "stock:1"}]}},
            "traffic": [{"percent": 100, "latestRevision": True}],
        },
    }
    created = server.apply(None, knative)
    changed = copy.deepcopy(knative)
    changed["spec"]["traffic"] = [{"percent": 50, "latestRevision": True}, {"percent": 50, "revisionName": "a"}]
    applied = server.apply(created, changed)
    assert applied["spec"]["traffic"] == changed["spec"]["traffic"]
    assert "f:traffic" in owned(applied, "kubectl")["f:spec"]


# --- bad configurations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(apiVersion="apps/v2"), "Specified patch version: apps/v2, expected: apps/v1"),
        (lambda c: c.update(kind="StatefulSet"), "kind StatefulSet"),
        (lambda c: c["metadata"].pop("name"), "metadata.name"),
        (lambda c: c["metadata"].update(managedFields=[]), "metadata.managedFields must be nil"),
        (lambda c: container(c).pop("name"), 'omits key field "name"'),
        (lambda c: c["spec"]["template"]["spec"]["containers"].append({"name": "web"}), "duplicate entries"),
    ],
)
def test_bad_configurations_are_400(server: Server, mutate: Any, message: str) -> None:
    bad = config()
    mutate(bad)
    with pytest.raises(BadRequest, match=message):
        server.apply(None, bad)


def test_the_name_must_match_the_live_object(server: Server) -> None:
    created = server.apply(None, config())
    renamed = config()
    renamed["metadata"]["name"] = "other"
    with pytest.raises(BadRequest, match=r"does not match the name on the URL \(web\)"):
        server.apply(created, renamed)


def test_a_field_manager_is_required(server: Server) -> None:
    with pytest.raises(BadRequest, match="fieldManager"):
        server.apply(None, config(), "")


def test_decode_apply_body_reads_yaml_and_json() -> None:
    assert decode_apply_body(b"kind: Deployment\nspec:\n  replicas: 2\n") == {
        "kind": "Deployment",
        "spec": {"replicas": 2},
    }
    assert decode_apply_body(b'{"kind": "Deployment"}') == {"kind": "Deployment"}
    for bad in (b"- a list", b"kind: [unclosed", b"\xff\xfe"):
        with pytest.raises(BadRequest, match="error decoding YAML"):
            decode_apply_body(bad)


# --- record_update ---------------------------------------------------------------------------------


def test_create_by_update_owns_every_field(server: Server) -> None:
    created = server.update(None, config(), "kubectl-create")
    [entry] = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == ("kubectl-create", "Update", "apps/v1")
    assert entry["fieldsV1"]["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert entry["fieldsV1"]["f:spec"]["f:replicas"] == {}


def test_an_update_takes_the_fields_it_changes(server: Server) -> None:
    created = server.update(None, config(), "creator")
    scaled = server.update(created, with_replicas(created, 3), "scaler")
    assert "f:replicas" not in owned(scaled, "creator")["f:spec"]
    assert owned(scaled, "scaler") == {"f:spec": {"f:replicas": {}}}
    assert entries(scaled)["scaler"]["time"] == "2026-01-01T00:00:02Z"


def test_an_update_that_changes_nothing_records_nothing(server: Server) -> None:
    created = server.update(None, config(), "creator")
    same = server.update(created, created, "someone")
    assert same["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_removed_fields_leave_every_manager(server: Server) -> None:
    created = server.update(None, config(), "creator")
    trimmed = copy.deepcopy(created)
    del trimmed["metadata"]["labels"]
    trimmed = server.update(created, trimmed, "trimmer")
    assert "f:metadata" not in owned(trimmed, "creator")
    assert "trimmer" not in entries(trimmed), "removing fields owns nothing"


def test_repeated_updates_by_one_manager_accumulate(server: Server) -> None:
    created = server.update(None, config(), "creator")
    scaled = server.update(created, with_replicas(created, 3), "editor")
    edited = copy.deepcopy(scaled)
    container(edited)["image"] = "web:2"
    edited = server.update(scaled, edited, "editor")
    fields = owned(edited, "editor")
    assert fields["f:spec"]["f:replicas"] == {}
    assert "f:image" in fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']


def test_managed_fields_sent_in_an_update_replace_the_stored_ones(server: Server) -> None:
    created = server.update(None, config(), "creator")
    reset = copy.deepcopy(created)
    reset["metadata"]["managedFields"] = []
    assert "managedFields" not in server.update(created, reset, "resetter")["metadata"]
    edited = copy.deepcopy(created)
    edited["metadata"]["managedFields"] = [
        {
            "manager": "x",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:paused": {}}},
        }
    ]
    assert set(entries(server.update(created, edited, "editor"))) == {"x"}


def test_undecodable_managed_fields_fall_back_to_the_stored_ones(server: Server) -> None:
    created = server.update(None, config(), "creator")
    garbage = copy.deepcopy(created)
    garbage["metadata"]["managedFields"] = [{"manager": "x", "operation": "Explode"}]
    assert set(entries(server.update(created, garbage, "editor"))) == {"creator"}


def test_subresource_updates_keep_the_stored_managed_fields_and_say_where(server: Server) -> None:
    created = server.update(None, config(), "creator")
    with_status = copy.deepcopy(created)
    with_status["status"] = {"replicas": 2}
    with_status["metadata"]["managedFields"] = []
    updated = server.update(created, with_status, "controller", subresource="status")
    entry = entries(updated)["controller"]
    assert entry["subresource"] == "status"
    # DeploymentStatus is a value struct upstream: it is never added, so it is not owned itself.
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}
    assert "creator" in entries(updated)


def test_an_update_conflicts_with_a_later_apply_as_upstream(server: Server) -> None:
    created = server.update(None, config(replicas=1), "kubectl-client-side-apply")
    with pytest.raises(Conflict, match="kubectl-client-side-apply"):
        server.apply(created, config(replicas=3))


# --- wire format and speed -------------------------------------------------------------------------


def test_fields_v1_marks_members_that_have_children() -> None:
    trie = fields_v1({("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:app"), ("f:spec", "f:replicas")})
    assert trie == {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}}
    assert list(fields_v1({("k:{}",), ("f:b",), ("f:a",)})) == ["f:a", "f:b", "k:{}"]


def test_stored_managed_fields_round_trip(server: Server) -> None:
    created = server.apply(None, config(ports=[{"containerPort": 80, "protocol": "UDP"}]))
    again = server.apply(created, config(ports=[{"containerPort": 80, "protocol": "UDP"}]))
    assert again["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_reordered_map_list_items_follow_the_configuration_around_others_items(server: Server) -> None:
    def named(*names: str) -> dict[str, Any]:
        applied = config()
        applied["spec"]["template"]["spec"]["containers"] = [{"name": n, "image": f"{n}:1"} for n in names]
        return applied

    created = server.apply(None, named("a", "b"))
    injected = copy.deepcopy(created)
    injected["spec"]["template"]["spec"]["containers"].insert(1, {"name": "x", "image": "x:1"})
    injected = server.update(created, injected, "injector")
    reordered = server.apply(injected, named("b", "a"))
    # structured-merge-diff keeps x where it was relative to the live items and takes b, a in applied order.
    assert [c["name"] for c in reordered["spec"]["template"]["spec"]["containers"]] == ["x", "b", "a"]
