"""Validation as the apiserver does it: strict decoding, CRD schemas, built-in rules, 422 field paths."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from localcluster.api.defaults import apply_defaults
from localcluster.api.errors import BadRequest, Invalid
from localcluster.api.resources import ResourceRegistry, ResourceType
from localcluster.api.schemas import SchemaIndex
from localcluster.api.validation import Validator, validate
from localcluster.api.validation._custom import go_duration_seconds

JsonObject = dict[str, Any]


@pytest.fixture(scope="module")
def validator(registry: ResourceRegistry) -> Validator:
    return Validator(SchemaIndex(registry))


def type_of(registry: ResourceRegistry, obj: JsonObject) -> ResourceType:
    resource_type = registry.by_kind(obj["apiVersion"], obj["kind"])
    assert resource_type is not None
    return resource_type


def check(
    validator: Validator, registry: ResourceRegistry, obj: JsonObject, old: JsonObject | None = None, **options: str
) -> list[str]:
    resource_type = type_of(registry, obj)
    return validator.validate(resource_type, obj["apiVersion"].rpartition("/")[2], obj, old, **options)


def causes_of(validator: Validator, registry: ResourceRegistry, obj: JsonObject, old: JsonObject | None = None):
    with pytest.raises(Invalid) as raised:
        check(validator, registry, obj, old)
    assert raised.value.code == 422
    return {(cause.field, cause.reason): cause.message for cause in raised.value.causes}


def deployment(**spec_changes: Any) -> JsonObject:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "storefront", "namespace": "bookstore", "labels": {"app": "storefront"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "storefront"}},
            "template": {
                "metadata": {"labels": {"app": "storefront", "version": "v1"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "ghcr.io/cloud-native-bookstore/workshop:latest",
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }
    obj["spec"].update(spec_changes)
    return obj


def containers(obj: JsonObject) -> list[JsonObject]:
    return obj["spec"]["template"]["spec"]["containers"]


def service(**spec: Any) -> JsonObject:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "stock"}, "spec": spec}


def knative_service(traffic: Any) -> JsonObject:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "stock", "namespace": "bookstore"},
        "spec": {
            "template": {
                "metadata": {"annotations": {"autoscaling.knative.dev/target": "10"}},
                "spec": {"containers": [{"image": "img", "ports": [{"containerPort": 8080}]}]},
            },
            "traffic": traffic,
        },
    }


def virtual_service(route: list[JsonObject], version: str = "v1") -> JsonObject:
    return {
        "apiVersion": f"networking.istio.io/{version}",
        "kind": "VirtualService",
        "metadata": {"name": "stock"},
        "spec": {"hosts": ["stock"], "http": [{"route": route}]},
    }


# Decoding: unknown fields and types.


def test_a_valid_deployment_passes_with_no_warnings(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment()
    assert check(validator, registry, obj) == []
    assert obj == deployment()


def test_strict_mode_rejects_unknown_fields_with_their_paths(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment(foo=1)
    containers(obj)[0]["bar"] = True
    with pytest.raises(BadRequest) as raised:
        check(validator, registry, obj)
    assert raised.value.code == 400
    assert raised.value.message.startswith("strict decoding error: ")
    assert 'unknown field "spec.foo"' in raised.value.message
    assert 'unknown field "spec.template.spec.containers[0].bar"' in raised.value.message


@pytest.mark.parametrize(("mode", "warned"), [("Warn", True), ("Ignore", False)])
def test_warn_and_ignore_prune_unknown_fields(
    validator: Validator, registry: ResourceRegistry, mode: str, warned: bool
) -> None:
    obj = deployment(foo=1)
    obj["metadata"]["colour"] = "blue"
    warnings = check(validator, registry, obj, field_validation=mode)
    assert "foo" not in obj["spec"]
    assert "colour" not in obj["metadata"]
    expected = ['unknown field "metadata.colour"', 'unknown field "spec.foo"']
    assert sorted(warnings) == (expected if warned else [])


def test_unknown_field_validation_mode_is_a_bad_request(validator: Validator, registry: ResourceRegistry) -> None:
    with pytest.raises(BadRequest, match="fieldValidation"):
        check(validator, registry, deployment(), field_validation="Loud")


def test_maps_keep_any_key(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment()
    obj["metadata"]["annotations"] = {"example.com/anything": "goes"}
    check(validator, registry, obj)
    assert obj["metadata"]["annotations"] == {"example.com/anything": "goes"}


def test_wrong_types_are_422_with_the_field_path(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment(replicas="two")
    containers(obj)[0]["ports"][0]["containerPort"] = "8080"
    causes = causes_of(validator, registry, obj)
    assert set(causes) == {
        ("spec.replicas", "FieldValueTypeInvalid"),
        ("spec.template.spec.containers[0].ports[0].containerPort", "FieldValueTypeInvalid"),
    }
    assert "spec.replicas in body must be of type integer" in causes["spec.replicas", "FieldValueTypeInvalid"]


def test_int_or_string_accepts_both(validator: Validator, registry: ResourceRegistry) -> None:
    obj = service(
        selector={"app": "stock"},
        ports=[{"name": "a", "port": 80, "targetPort": 8080}, {"name": "b", "port": 81, "targetPort": "http"}],
    )
    check(validator, registry, obj)
    obj["spec"]["ports"][0]["targetPort"] = True
    assert ("spec.ports[0].targetPort", "FieldValueTypeInvalid") in causes_of(validator, registry, obj)


def test_a_body_that_is_not_an_object_is_a_bad_request(validator: Validator, registry: ResourceRegistry) -> None:
    with pytest.raises(BadRequest):
        validator.validate(type_of(registry, deployment()), "v1", ["not", "an", "object"], None)  # type: ignore[arg-type]


# Metadata.


@pytest.mark.parametrize(
    ("obj", "bad_name", "rule"),
    [
        (deployment(), "Store_Front", "RFC 1123 subdomain"),
        (
            {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"containers": [{"name": "a", "image": "i"}]}},
            "a.b_c",
            "RFC 1123 subdomain",
        ),
        (service(clusterIP="None"), "1stock", "DNS-1035 label"),
        ({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}, "book.store", "RFC 1123 label"),
    ],
)
def test_names_follow_the_rule_of_their_kind(
    validator: Validator, registry: ResourceRegistry, obj: JsonObject, bad_name: str, rule: str
) -> None:
    obj = copy.deepcopy(obj)
    obj["metadata"]["name"] = bad_name
    causes = causes_of(validator, registry, obj)
    assert rule in causes["metadata.name", "FieldValueInvalid"]
    assert causes["metadata.name", "FieldValueInvalid"].startswith(f'Invalid value: "{bad_name}": ')


def test_pod_names_may_have_dots_but_service_names_may_not(validator: Validator, registry: ResourceRegistry) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web.v1"},
        "spec": {"containers": [{"name": "web", "image": "img"}]},
    }
    check(validator, registry, pod)
    svc = service(clusterIP="None")
    svc["metadata"]["name"] = "web.v1"
    assert ("metadata.name", "FieldValueInvalid") in causes_of(validator, registry, svc)


def test_name_or_generate_name_is_required(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment()
    del obj["metadata"]["name"]
    causes = causes_of(validator, registry, obj)
    assert causes["metadata.name", "FieldValueRequired"] == "Required value: name or generateName is required"
    obj["metadata"]["generateName"] = "storefront-"
    check(validator, registry, obj)


def test_namespace_and_labels_syntax(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment()
    obj["metadata"]["namespace"] = "Book_Store"
    obj["metadata"]["labels"] = {"bad key!": "ok", "app": "bad value!"}
    with pytest.raises(Invalid) as raised:
        check(validator, registry, obj)
    by_field = sorted((cause.field, cause.message.split(":")[1].strip()) for cause in raised.value.causes)
    assert by_field == [
        ("metadata.labels", '"bad key!"'),
        ("metadata.labels", '"bad value!"'),
        ("metadata.namespace", '"Book_Store"'),
    ]
    key_error = next(cause.message for cause in raised.value.causes if "bad key!" in cause.message)
    assert "name part must consist of alphanumeric characters" in key_error


def test_cluster_scoped_objects_may_not_have_a_namespace(validator: Validator, registry: ResourceRegistry) -> None:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "namespace": "default"}}
    assert ("metadata.namespace", "FieldValueForbidden") in causes_of(validator, registry, obj)


# Pods and templates.


def test_container_names_unique_and_valid_across_init_containers(
    validator: Validator, registry: ResourceRegistry
) -> None:
    obj = deployment()
    spec = obj["spec"]["template"]["spec"]
    spec["initContainers"] = [{"name": "web", "image": "img"}]
    spec["containers"].append({"name": "Side_Car"})
    causes = causes_of(validator, registry, obj)
    assert causes["spec.template.spec.containers[0].name", "FieldValueDuplicate"] == 'Duplicate value: "web"'
    assert ("spec.template.spec.containers[1].name", "FieldValueInvalid") in causes
    assert causes["spec.template.spec.containers[1].image", "FieldValueRequired"] == "Required value"


def test_pod_needs_a_container(validator: Validator, registry: ResourceRegistry) -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}
    assert ("spec.containers", "FieldValueRequired") in causes_of(validator, registry, obj)


def test_ports_range_and_unique_names(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment()
    containers(obj)[0]["ports"] = [{"containerPort": 70000, "name": "http"}, {"containerPort": 9090, "name": "http"}]
    causes = causes_of(validator, registry, obj)
    port = "spec.template.spec.containers[0].ports"
    assert causes[f"{port}[0].containerPort", "FieldValueInvalid"] == (
        "Invalid value: 70000: must be between 1 and 65535, inclusive"
    )
    assert (f"{port}[1].name", "FieldValueDuplicate") in causes


def test_probe_needs_exactly_one_handler(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment()
    containers(obj)[0]["livenessProbe"] = {"periodSeconds": 5}
    containers(obj)[0]["readinessProbe"] = {"httpGet": {"port": 8080}, "tcpSocket": {"port": 8080}}
    causes = causes_of(validator, registry, obj)
    container = "spec.template.spec.containers[0]"
    assert causes[f"{container}.livenessProbe", "FieldValueRequired"] == "Required value: must specify a handler type"
    assert (f"{container}.readinessProbe.tcpSocket", "FieldValueForbidden") in causes


def test_restart_policy_supported_values(validator: Validator, registry: ResourceRegistry) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "web", "image": "img"}]},
    }
    causes = causes_of(validator, registry, pod)
    assert causes["spec.restartPolicy", "FieldValueNotSupported"] == (
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
    )
    obj = deployment()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    causes = causes_of(validator, registry, obj)
    assert causes["spec.template.spec.restartPolicy", "FieldValueNotSupported"].endswith('supported values: "Always"')


def test_volumes_unique_and_mounts_name_a_volume(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment()
    spec = obj["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "data", "emptyDir": {}, "configMap": {"name": "c"}})
    containers(obj)[0]["volumeMounts"].append({"name": "cache", "mountPath": "/cache"})
    causes = causes_of(validator, registry, obj)
    assert ("spec.template.spec.volumes[1].name", "FieldValueDuplicate") in causes
    assert ("spec.template.spec.volumes[1].configMap", "FieldValueForbidden") in causes
    assert causes["spec.template.spec.containers[0].volumeMounts[1].name", "FieldValueNotFound"] == (
        'Not found: "cache"'
    )


def test_pod_spec_is_immutable_except_images(validator: Validator, registry: ResourceRegistry) -> None:
    old = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "web", "image": "img:1"}]},
    }
    new_image = copy.deepcopy(old)
    new_image["spec"]["containers"][0]["image"] = "img:2"
    check(validator, registry, new_image, old)
    new_env = copy.deepcopy(old)
    new_env["spec"]["containers"][0]["env"] = [{"name": "A", "value": "b"}]
    causes = causes_of(validator, registry, new_env, old)
    assert causes["spec", "FieldValueForbidden"].startswith("Forbidden: pod updates may not change fields")


# Workloads.


def test_selector_must_match_template_labels(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment(selector={"matchLabels": {"app": "stock"}})
    causes = causes_of(validator, registry, obj)
    assert causes["spec.template.metadata.labels", "FieldValueInvalid"].endswith(
        "`selector` does not match template `labels`"
    )


def test_selector_match_expressions_are_honoured(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment(selector={"matchExpressions": [{"key": "version", "operator": "In", "values": ["v1", "v2"]}]})
    check(validator, registry, obj)
    obj = deployment(selector={"matchExpressions": [{"key": "version", "operator": "Exists", "values": ["v1"]}]})
    assert ("spec.selector.matchExpressions[0].values", "FieldValueForbidden") in causes_of(validator, registry, obj)


def test_replicas_and_selector_required(validator: Validator, registry: ResourceRegistry) -> None:
    obj = deployment(replicas=-1)
    del obj["spec"]["selector"]
    causes = causes_of(validator, registry, obj)
    assert causes["spec.replicas", "FieldValueInvalid"] == "Invalid value: -1: must be greater than or equal to 0"
    assert ("spec.selector", "FieldValueRequired") in causes


def test_strategy_values(validator: Validator, registry: ResourceRegistry) -> None:
    causes = causes_of(validator, registry, deployment(strategy={"type": "Fast"}))
    assert causes["spec.strategy.type", "FieldValueNotSupported"] == (
        'Unsupported value: "Fast": supported values: "Recreate", "RollingUpdate"'
    )
    obj = deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}})
    assert ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid") in causes_of(validator, registry, obj)
    obj = deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "half"}})
    assert ("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid") in causes_of(validator, registry, obj)
    obj = deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    assert ("spec.strategy.rollingUpdate", "FieldValueForbidden") in causes_of(validator, registry, obj)


def test_deployment_selector_is_immutable(validator: Validator, registry: ResourceRegistry) -> None:
    old = deployment()
    new = deployment(selector={"matchLabels": {"app": "storefront", "version": "v1"}})
    causes = causes_of(validator, registry, new, old)
    assert causes["spec.selector", "FieldValueInvalid"].endswith("field is immutable")
    check(validator, registry, deployment(replicas=5), old)


def test_defaulted_deployment_and_replica_set_validate(validator: Validator, registry: ResourceRegistry) -> None:
    for kind in ("Deployment", "ReplicaSet"):
        obj = deployment()
        obj["kind"] = kind
        apply_defaults(type_of(registry, obj), obj)
        assert check(validator, registry, obj) == []


# Services.


def test_service_ports_rules(validator: Validator, registry: ResourceRegistry) -> None:
    causes = causes_of(validator, registry, service(selector={"app": "stock"}))
    assert ("spec.ports", "FieldValueRequired") in causes
    obj = service(
        ports=[
            {"port": 0, "protocol": "HTTP"},
            {"name": "b", "port": 81, "targetPort": 70000},
            {"name": "b", "port": 82, "nodePort": 30000},
        ]
    )
    causes = causes_of(validator, registry, obj)
    assert (
        causes["spec.ports[0].port", "FieldValueInvalid"] == "Invalid value: 0: must be between 1 and 65535, inclusive"
    )
    assert ("spec.ports[0].name", "FieldValueRequired") in causes
    assert causes["spec.ports[0].protocol", "FieldValueNotSupported"] == (
        'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'
    )
    assert ("spec.ports[1].targetPort", "FieldValueInvalid") in causes
    assert ("spec.ports[2].name", "FieldValueDuplicate") in causes
    assert ("spec.ports[2].nodePort", "FieldValueForbidden") in causes


def test_schema_required_fields_of_built_ins_are_reported_once(
    validator: Validator, registry: ResourceRegistry
) -> None:
    obj = deployment()
    containers(obj).append({"image": "img"})
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"value": "x"}]
    with pytest.raises(Invalid) as raised:
        check(validator, registry, obj)
    fields = [cause.field for cause in raised.value.causes if cause.reason == "FieldValueRequired"]
    assert sorted(fields) == ["spec.template.spec.containers[0].env[0].name", "spec.template.spec.containers[1].name"]
    causes = causes_of(validator, registry, service(ports=[{"name": "http"}]))
    assert causes["spec.ports[0].port", "FieldValueRequired"] == "Required value"


def test_service_single_unnamed_port_and_headless_without_ports(
    validator: Validator, registry: ResourceRegistry
) -> None:
    check(validator, registry, service(selector={"app": "stock"}, ports=[{"port": 80}]))
    check(validator, registry, service(clusterIP="None"))


def test_service_cluster_ip_is_immutable(validator: Validator, registry: ResourceRegistry) -> None:
    old = service(ports=[{"port": 80}], clusterIP="10.96.0.10")
    new = service(ports=[{"port": 80}], clusterIP="10.96.0.11")
    assert ("spec.clusterIP", "FieldValueInvalid") in causes_of(validator, registry, new, old)


# ConfigMaps and Secrets.


def test_config_keys_and_size(validator: Validator, registry: ResourceRegistry) -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"bad key": "x", "big": "x" * (1024 * 1024)},
    }
    causes = causes_of(validator, registry, obj)
    assert ("data[bad key]", "FieldValueInvalid") in causes
    assert causes["data", "FieldValueTooLong"] == "Too long: may not be more than 1048576 bytes"


def test_secret_data_must_be_base64(validator: Validator, registry: ResourceRegistry) -> None:
    good = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"password": base64.b64encode(b"pw").decode()},
    }
    check(validator, registry, good)
    bad = copy.deepcopy(good)
    bad["data"]["password"] = "not base64!"
    assert ("data[password]", "FieldValueInvalid") in causes_of(validator, registry, bad)


def test_immutable_config_map_refuses_data_changes(validator: Validator, registry: ResourceRegistry) -> None:
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "immutable": True, "data": {"a": "1"}}
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert ("data", "FieldValueForbidden") in causes_of(validator, registry, new, old)


# Custom kinds.


def test_knative_service_against_its_crd(validator: Validator, registry: ResourceRegistry) -> None:
    assert check(validator, registry, knative_service([{"latestRevision": True, "percent": 100}])) == []
    causes = causes_of(validator, registry, knative_service([{"latestRevision": True, "percent": "all"}]))
    assert ("spec.traffic[0].percent", "FieldValueTypeInvalid") in causes


def test_crd_preserve_unknown_fields_keeps_template_metadata(validator: Validator, registry: ResourceRegistry) -> None:
    obj = knative_service([{"latestRevision": True, "percent": 100}])
    obj["spec"]["template"]["metadata"]["generateName"] = "stock-"
    obj["spec"]["template"]["spec"]["containers"][0]["sidecarMagic"] = True
    warnings = check(validator, registry, obj, field_validation="Warn")
    assert warnings == ['unknown field "spec.template.spec.containers[0].sidecarMagic"']
    assert obj["spec"]["template"]["metadata"]["generateName"] == "stock-"


def test_crd_metadata_is_checked_as_object_meta(validator: Validator, registry: ResourceRegistry) -> None:
    obj = knative_service([{"latestRevision": True, "percent": 100}])
    obj["metadata"]["name"] = "Stock!"
    obj["metadata"]["labelz"] = {}
    with pytest.raises(BadRequest, match=r'unknown field "metadata\.labelz"'):
        check(validator, registry, copy.deepcopy(obj))
    del obj["metadata"]["labelz"]
    assert ("metadata.name", "FieldValueInvalid") in causes_of(validator, registry, obj)


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_virtual_service_weights_in_every_served_version(
    validator: Validator, registry: ResourceRegistry, version: str
) -> None:
    route = [
        {"destination": {"host": "stock", "subset": "v1"}, "weight": 90},
        {"destination": {"host": "stock", "subset": "v2"}, "weight": 10},
    ]
    assert check(validator, registry, virtual_service(route, version)) == []
    route[0]["weight"] = "ninety"
    causes = causes_of(validator, registry, virtual_service(route, version))
    assert ("spec.http[0].route[0].weight", "FieldValueTypeInvalid") in causes


def test_crd_required_fields(validator: Validator, registry: ResourceRegistry) -> None:
    obj = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "stock"},
        "spec": {"host": "stock", "subsets": [{"labels": {"version": "v1"}}]},
    }
    causes = causes_of(validator, registry, obj)
    assert causes["spec.subsets[0].name", "FieldValueRequired"] == "Required value"


def test_simple_cel_rules_are_evaluated(validator: Validator, registry: ResourceRegistry) -> None:
    obj = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "stock"},
        "spec": {"host": "stock", "trafficPolicy": {"connectionPool": {"tcp": {"connectTimeout": "500us"}}}},
    }
    causes = causes_of(validator, registry, obj)
    field = "spec.trafficPolicy.connectionPool.tcp.connectTimeout"
    assert causes[field, "FieldValueInvalid"] == 'Invalid value: "string": must be a valid duration greater than 1ms'
    obj["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["connectTimeout"] = "1.5s"
    check(validator, registry, obj)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h2m", 3720.0), ("1.5s", 1.5), ("100ms", 0.1), ("0", 0.0), ("5", None), ("1x", None)]
)
def test_go_durations(text: str, seconds: float | None) -> None:
    assert go_duration_seconds(text) == (pytest.approx(seconds) if seconds is not None else None)


# The module-level entry point and its cost.


def test_module_level_validate_uses_a_shared_validator(registry: ResourceRegistry) -> None:
    obj = deployment(foo=1)
    assert validate(type_of(registry, obj), "v1", obj, None, field_validation="Warn") == ['unknown field "spec.foo"']


def test_negative_counts_and_durations_are_refused_where_they_stand(
    validator: Validator, registry: ResourceRegistry
) -> None:
    """ValidateNonnegativeField wherever upstream has one: a workload, its pod template, a probe, a Job."""

    def refused(manifest: JsonObject) -> dict[str, str]:
        causes = causes_of(validator, registry, manifest)
        return {field: message for (field, _), message in causes.items() if "greater than or equal to 0" in message}

    obj = deployment(minReadySeconds=-1, revisionHistoryLimit=-2)
    obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = -3
    containers(obj)[0]["livenessProbe"] = {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": -4}
    assert refused(obj) == {
        "spec.minReadySeconds": "Invalid value: -1: must be greater than or equal to 0",
        "spec.revisionHistoryLimit": "Invalid value: -2: must be greater than or equal to 0",
        "spec.template.spec.terminationGracePeriodSeconds": "Invalid value: -3: must be greater than or equal to 0",
        "spec.template.spec.containers[0].livenessProbe.periodSeconds": (
            "Invalid value: -4: must be greater than or equal to 0"
        ),
    }
    container = {"name": "main", "image": "ghcr.io/cloud-native-bookstore/workshop:latest"}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once", "namespace": "bookstore"},
        "spec": {"backoffLimit": -5, "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }
    assert refused(job) == {"spec.backoffLimit": "Invalid value: -5: must be greater than or equal to 0"}
