"""PATCH flavours, with cases modelled on upstream's strategicpatch tests and RFC 6902/7386 examples."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from localcluster.api.errors import BadRequest, Invalid, UnsupportedMediaType
from localcluster.api.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    accepted_patch_types,
    apply_patch,
    media_type,
)
from localcluster.api.resources import ResourceRegistry, ResourceType
from localcluster.api.schemas import SchemaIndex


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "web:1",
                            "args": ["--port", "80"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        },
                        {"name": "sidecar", "image": "side:1"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


class Patcher:
    """Patches one live object of one kind, checking every time that the live object stays untouched."""

    def __init__(self, index: SchemaIndex, resource_type: ResourceType, current: dict[str, Any]) -> None:
        self.index = index
        self.resource_type = resource_type
        self.current = current

    def __call__(self, content_type: str, body: Any) -> dict[str, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        before = copy.deepcopy(self.current)
        try:
            return apply_patch(
                content_type,
                self.current,
                raw,
                index=self.index,
                resource_type=self.resource_type,
                version=self.resource_type.storage_version,
            )
        finally:
            assert self.current == before, "apply_patch mutated the live object"


@pytest.fixture
def patch(index: SchemaIndex, registry: ResourceRegistry) -> Patcher:
    return Patcher(index, registry.get("apps", "deployments"), deployment())


def smp(patch: Patcher, body: Any) -> dict[str, Any]:
    return patch(STRATEGIC_MERGE_PATCH, body)


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def template_patch(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": pod_spec}}}


# --- content types ---------------------------------------------------------------------------------


def test_media_type_drops_parameters_and_case() -> None:
    assert media_type("Application/Merge-Patch+JSON; charset=utf-8") == MERGE_PATCH


def test_unknown_content_type_is_415_listing_accepted_types(patch: Patcher) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        patch("application/json", {"spec": {}})
    assert caught.value.code == 415
    assert caught.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml"
    )


def test_strategic_merge_patch_of_a_custom_kind_is_415(index: SchemaIndex, registry: ResourceRegistry) -> None:
    service_type = registry.get("serving.knative.dev", "services")
    patcher = Patcher(index, service_type, {"apiVersion": "serving.knative.dev/v1", "kind": "Service"})
    with pytest.raises(UnsupportedMediaType) as caught:
        patcher(STRATEGIC_MERGE_PATCH, {"spec": {}})
    assert "application/strategic-merge-patch+json" not in caught.value.message
    assert caught.value.message.endswith(
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )
    assert accepted_patch_types(service_type) == (JSON_PATCH, MERGE_PATCH, "application/apply-patch+yaml")


def test_merge_patch_of_a_custom_kind_works(index: SchemaIndex, registry: ResourceRegistry) -> None:
    service_type = registry.get("serving.knative.dev", "services")
    live = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "spec": {"traffic": [{"percent": 100}]}}
    patched = Patcher(index, service_type, live)(MERGE_PATCH, {"spec": {"traffic": [{"percent": 50}]}})
    assert patched["spec"]["traffic"] == [{"percent": 50}]


def test_apply_content_type_is_not_a_patch_flavour(patch: Patcher) -> None:
    with pytest.raises(UnsupportedMediaType):
        patch("application/apply-patch+yaml", {"spec": {}})


@pytest.mark.parametrize("content_type", [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH])
@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"", b'{"a": NaN}'])
def test_undecodable_body_is_400(patch: Patcher, content_type: str, body: bytes) -> None:
    with pytest.raises(BadRequest, match="error decoding patch"):
        patch(content_type, body)


@pytest.mark.parametrize("content_type", [MERGE_PATCH, STRATEGIC_MERGE_PATCH])
@pytest.mark.parametrize("body", [[], None, "text", 3])
def test_object_patches_must_be_objects(patch: Patcher, content_type: str, body: Any) -> None:
    with pytest.raises(BadRequest, match="must be a JSON object"):
        patch(content_type, body)


# --- JSON patch (RFC 6902) -------------------------------------------------------------------------


def test_json_patch_operations(patch: Patcher) -> None:
    patched = patch(
        JSON_PATCH,
        [
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/version", "value": "v2"},
            {"op": "remove", "path": "/metadata/labels/tier"},
            {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/annotations"},
            {"op": "move", "from": "/metadata/finalizers/0", "path": "/metadata/finalizers/-"},
            {"op": "add", "path": "/spec/template/spec/containers/1/args", "value": ["-v"]},
        ],
    )
    assert patched["spec"]["replicas"] == 3
    assert patched["metadata"]["labels"] == {"app": "web", "version": "v2"}
    assert patched["metadata"]["annotations"] == "web"
    assert patched["metadata"]["finalizers"] == ["b", "a"]
    assert containers(patched)[1]["args"] == ["-v"]


def test_json_patch_failing_test_is_422_and_applies_nothing(patch: Patcher) -> None:
    with pytest.raises(Invalid, match="test operation"):
        patch(
            JSON_PATCH,
            [
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "test", "path": "/spec/replicas", "value": 1},
            ],
        )


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "/spec/nothing/here", "value": 1},
        {"op": "remove", "path": "/metadata/labels/absent"},
        {"op": "add", "path": "/spec/template/spec/containers/9", "value": {}},
        {"op": "add", "path": "/spec/replicas/x", "value": 1},
        {"op": "move", "from": "/spec/absent", "path": "/spec/here"},
    ],
)
def test_json_patch_paths_that_do_not_apply_are_422(patch: Patcher, operation: dict[str, Any]) -> None:
    with pytest.raises(Invalid, match="could not be applied"):
        patch(JSON_PATCH, [operation])


@pytest.mark.parametrize(
    ("operations", "error", "message"),
    [
        ({"op": "add"}, BadRequest, "expected an array"),
        (["add"], BadRequest, "not an object"),
        ([{"op": "frobnicate", "path": "/a"}], Invalid, 'unknown "op"'),
        ([{"op": "add", "value": 1}], Invalid, 'needs a string "path"'),
        ([{"op": "add", "path": "/spec/x"}], Invalid, 'needs a "value"'),
        ([{"op": "copy", "path": "/spec/x"}], Invalid, 'needs a string "from"'),
        ([{"op": "replace", "path": "", "value": [1]}], Invalid, "must stay a JSON object"),
    ],
)
def test_malformed_json_patch(patch: Patcher, operations: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        patch(JSON_PATCH, operations)


# --- JSON merge patch (RFC 7386) -------------------------------------------------------------------


def test_merge_patch_merges_objects_and_deletes_nulls(patch: Patcher) -> None:
    patched = patch(MERGE_PATCH, {"metadata": {"labels": {"tier": None, "v": "2"}}, "spec": {"replicas": 2}})
    assert patched["metadata"]["labels"] == {"app": "web", "v": "2"}
    assert patched["spec"]["replicas"] == 2
    assert patched["spec"]["strategy"] == deployment()["spec"]["strategy"]


def test_merge_patch_replaces_lists_whole(patch: Patcher) -> None:
    patched = patch(MERGE_PATCH, template_patch({"containers": [{"name": "only", "image": "x"}]}))
    assert containers(patched) == [{"name": "only", "image": "x"}]


def test_merge_patch_creates_nested_objects_without_nulls(patch: Patcher) -> None:
    patched = patch(MERGE_PATCH, {"metadata": {"annotations": {"a": "1", "gone": None}}})
    assert patched["metadata"]["annotations"] == {"a": "1"}


# --- strategic merge patch -------------------------------------------------------------------------


def test_lists_with_merge_strategy_merge_by_key(patch: Patcher) -> None:
    patched = smp(
        patch,
        template_patch(
            {
                "containers": [
                    {
                        "name": "web",
                        "image": "web:2",
                        "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                    },
                    {"name": "extra", "image": "extra:1"},
                ]
            }
        ),
    )
    web, sidecar, extra = containers(patched)
    assert (web["name"], sidecar["name"], extra["name"]) == ("web", "sidecar", "extra")
    assert web["image"] == "web:2"
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}]
    assert web["args"] == ["--port", "80"]
    assert sidecar == {"name": "sidecar", "image": "side:1"}


def test_lists_without_merge_strategy_are_replaced(patch: Patcher) -> None:
    patched = smp(patch, template_patch({"containers": [{"name": "web", "args": ["--verbose"]}]}))
    assert containers(patched)[0]["args"] == ["--verbose"]


def test_merge_keys_that_are_numbers(patch: Patcher) -> None:
    patched = smp(
        patch,
        template_patch(
            {"containers": [{"name": "web", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 9090}]}]}
        ),
    )
    assert containers(patched)[0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
        {"containerPort": 9090},
    ]


def test_null_deletes_a_key(patch: Patcher) -> None:
    patched = smp(patch, {"metadata": {"labels": {"tier": None}}, "spec": {"strategy": {"rollingUpdate": None}}})
    assert patched["metadata"]["labels"] == {"app": "web"}
    assert patched["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_new_values_lose_their_nulls(patch: Patcher) -> None:
    patched = smp(patch, {"metadata": {"annotations": {"a": "1", "b": None}}})
    assert patched["metadata"]["annotations"] == {"a": "1"}


def test_patch_delete_directive_in_a_list_removes_the_item(patch: Patcher) -> None:
    patched = smp(patch, template_patch({"containers": [{"name": "sidecar", "$patch": "delete"}]}))
    assert [c["name"] for c in containers(patched)] == ["web"]


def test_patch_delete_directive_needs_the_merge_key(patch: Patcher) -> None:
    with pytest.raises(BadRequest, match="does not contain declared merge key: name"):
        smp(patch, template_patch({"containers": [{"$patch": "delete"}]}))


def test_patch_replace_directive_in_a_list_replaces_it(patch: Patcher) -> None:
    patched = smp(patch, template_patch({"containers": [{"name": "solo", "image": "s"}, {"$patch": "replace"}]}))
    assert containers(patched) == [{"name": "solo", "image": "s"}]


def test_patch_replace_directive_in_a_map_replaces_it(patch: Patcher) -> None:
    patched = smp(patch, {"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}})
    assert patched["spec"]["strategy"] == {"type": "Recreate"}


def test_patch_delete_directive_in_a_map_empties_it(patch: Patcher) -> None:
    patched = smp(patch, {"metadata": {"labels": {"$patch": "delete"}}})
    assert patched["metadata"]["labels"] == {}


def test_directive_on_an_absent_map_leaves_it_absent(patch: Patcher) -> None:
    patched = smp(patch, {"metadata": {"annotations": {"$patch": "delete"}}})
    assert "annotations" not in patched["metadata"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"metadata": {"labels": {"$patch": "merge"}}}, "unknown patch type"),
        ({"metadata": {"labels": {"$patch": "explode"}}}, "unknown patch type"),
        (template_patch({"containers": [{"$patch": "merge"}]}), "merging lists cannot yet be specified"),
        (template_patch({"containers": [{"name": "x", "$patch": "explode"}]}), "unknown patch type"),
    ],
)
def test_unsupported_patch_directives_are_400(patch: Patcher, body: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        smp(patch, body)


def test_retain_keys_clears_keys_not_listed(patch: Patcher) -> None:
    patched = smp(patch, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert patched["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_must_cover_the_patch(patch: Patcher) -> None:
    with pytest.raises(BadRequest, match="retainKeys"):
        smp(patch, {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}})
    with pytest.raises(BadRequest, match="invalid patch format of retainKeys"):
        smp(patch, {"spec": {"strategy": {"$retainKeys": "type"}}})


def test_retain_keys_on_volumes_swaps_the_volume_source(patch: Patcher) -> None:
    patched = smp(
        patch,
        template_patch(
            {
                "volumes": [
                    {
                        "name": "data",
                        "$retainKeys": ["name", "persistentVolumeClaim"],
                        "persistentVolumeClaim": {"claimName": "data"},
                    }
                ]
            }
        ),
    )
    assert patched["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
    ]


def test_primitive_lists_with_merge_strategy_are_unioned_without_duplicates(patch: Patcher) -> None:
    patched = smp(patch, {"metadata": {"finalizers": ["b", "c", "c"]}})
    assert patched["metadata"]["finalizers"] == ["a", "b", "c"]


def test_delete_from_primitive_list(patch: Patcher) -> None:
    patched = smp(patch, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zzz"]}})
    assert patched["metadata"]["finalizers"] == ["b"]


def test_delete_from_absent_primitive_list_changes_nothing(patch: Patcher) -> None:
    patched = smp(patch, template_patch({"$deleteFromPrimitiveList/imagePullSecrets": ["x"]}))
    assert "imagePullSecrets" not in patched["spec"]["template"]["spec"]


def test_set_element_order_reorders_a_merged_list(patch: Patcher) -> None:
    patched = smp(
        patch,
        template_patch(
            {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                "containers": [{"name": "web", "image": "web:3"}],
            }
        ),
    )
    assert [(c["name"], c["image"]) for c in containers(patched)] == [("sidecar", "side:1"), ("web", "web:3")]


def test_set_element_order_of_primitives(patch: Patcher) -> None:
    patched = smp(patch, {"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}})
    assert patched["metadata"]["finalizers"] == ["c", "b", "a"]


def test_set_element_order_must_agree_with_the_patch_list(patch: Patcher) -> None:
    with pytest.raises(BadRequest, match="doesn't match"):
        smp(
            patch,
            template_patch(
                {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "containers": [{"name": "sidecar", "image": "s"}, {"name": "web", "image": "w"}],
                }
            ),
        )


def test_new_items_come_in_patch_order_and_live_items_keep_theirs(patch: Patcher) -> None:
    patched = smp(patch, {"metadata": {"finalizers": ["z", "b", "y"]}})
    # Upstream's mergeSortedSlice: a patch item absent from the live list goes before live-only items,
    # a live-only item goes before a later patch item that it precedes in the live list.
    assert patched["metadata"]["finalizers"] == ["z", "a", "b", "y"]


def test_directives_in_new_values_are_dropped(patch: Patcher) -> None:
    patched = smp(
        patch,
        template_patch(
            {
                "containers": [
                    {
                        "name": "new",
                        "image": "n",
                        "env": [{"name": "X", "value": "1"}, {"$patch": "delete", "name": "Y"}],
                    }
                ],
                "tolerations": [{"key": "k", "$patch": "delete"}],
            }
        ),
    )
    assert containers(patched)[-1] == {"name": "new", "image": "n", "env": [{"name": "X", "value": "1"}]}
    assert patched["spec"]["template"]["spec"]["tolerations"] == []


def test_a_map_patch_over_a_scalar_takes_the_patch(patch: Patcher) -> None:
    patched = smp(patch, {"spec": {"replicas": {"odd": True, "gone": None}}})
    assert patched["spec"]["replicas"] == {"odd": True}


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (template_patch({"containers": [{"image": "no-name"}]}), BadRequest, "merge key: name"),
        (template_patch({"containers": ["web"]}), BadRequest, "list element types are not identical"),
        ({"metadata": {"finalizers": [["nested"]]}}, Invalid, "lists of lists"),
        ({"metadata": {"$setElementOrder/finalizers": "a"}}, BadRequest, "setElementOrder"),
    ],
)
def test_bad_strategic_patches(patch: Patcher, body: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        smp(patch, body)


def test_top_level_delete_empties_the_object(patch: Patcher) -> None:
    assert smp(patch, {"$patch": "delete"}) == {}


def test_true_is_not_one_when_matching_merge_keys(index: SchemaIndex, registry: ResourceRegistry) -> None:
    live = {"spec": {"ports": [{"port": 1, "name": "one"}]}}
    patcher = Patcher(index, registry.get("", "services"), live)
    patched = patcher(STRATEGIC_MERGE_PATCH, {"spec": {"ports": [{"port": True, "name": "odd"}]}})
    assert patched["spec"]["ports"] == [{"port": 1, "name": "one"}, {"port": True, "name": "odd"}]
