"""Defaults as the real apiserver fills them in (pkg/apis/core/v1 and apps/v1 defaults.go)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from localcluster.api.defaults import apply_defaults, image_pull_policy
from localcluster.api.resources import ResourceRegistry


def defaulted(registry: ResourceRegistry, obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    resource_type = registry.by_kind(obj["apiVersion"], obj["kind"])
    assert resource_type is not None
    apply_defaults(resource_type, obj)
    return obj


def pod_spec(**extra: Any) -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "web",
                "image": "ghcr.io/example/web:1.2",
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"port": 8080}},
            }
        ],
        **extra,
    }


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("registry.local:5000/nginx", "Always"),
        ("registry.local:5000/nginx:1.25", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
    ],
)
def test_image_pull_policy_follows_the_tag(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_pod_gets_spec_container_probe_and_admission_defaults(registry: ResourceRegistry) -> None:
    pod = defaulted(registry, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec()})
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}
    assert spec["serviceAccountName"] == "default"
    assert spec["enableServiceLinks"] is True
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def test_pod_defaults_keep_what_the_client_set(registry: ResourceRegistry) -> None:
    spec = pod_spec(restartPolicy="Never", terminationGracePeriodSeconds=0, serviceAccountName="robot")
    spec["containers"][0]["imagePullPolicy"] = "Never"
    pod = defaulted(registry, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 0
    assert pod["spec"]["serviceAccountName"] == "robot"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_pod_volumes_and_requests_default(registry: ResourceRegistry) -> None:
    spec = pod_spec(volumes=[{"name": "scratch"}, {"name": "conf", "configMap": {"name": "c"}}])
    spec["containers"][0]["resources"] = {"limits": {"cpu": "500m"}}
    spec["containers"][0]["env"] = [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    pod = defaulted(registry, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    assert pod["spec"]["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "conf", "configMap": {"name": "c", "defaultMode": 420}},
    ]
    container = pod["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"cpu": "500m"}, "requests": {"cpu": "500m"}}
    assert container["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"


def test_deployment_defaults_and_its_template(registry: ResourceRegistry) -> None:
    deployment = defaulted(
        registry,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()},
            },
        },
    )
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    template_spec = spec["template"]["spec"]
    assert template_spec["restartPolicy"] == "Always"
    assert template_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    # Pod-only defaults (SetDefaults_Pod, admission) do not reach templates, as upstream.
    assert "enableServiceLinks" not in template_spec
    assert "serviceAccountName" not in template_spec


def test_deployment_recreate_strategy_gets_no_rolling_update(registry: ResourceRegistry) -> None:
    deployment = defaulted(
        registry,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "w"},
            "spec": {"replicas": 0, "strategy": {"type": "Recreate"}},
        },
    )
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == 0


def test_replica_set_replicas(registry: ResourceRegistry) -> None:
    replica_set = defaulted(registry, {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"}})
    assert replica_set["spec"]["replicas"] == 1


def test_service_defaults(registry: ResourceRegistry) -> None:
    service = defaulted(
        registry,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}, {"port": 81, "targetPort": "http"}]},
        },
    )
    spec = service["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [
        {"port": 80, "protocol": "TCP", "targetPort": 80},
        {"port": 81, "targetPort": "http", "protocol": "TCP"},
    ]
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec


def test_external_name_service_gets_no_ip_families(registry: ResourceRegistry) -> None:
    service = defaulted(
        registry,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db"},
            "spec": {"type": "ExternalName", "externalName": "db.example"},
        },
    )
    assert "ipFamilies" not in service["spec"]
    assert "internalTrafficPolicy" not in service["spec"]


def test_secret_string_data_is_merged_into_data(registry: ResourceRegistry) -> None:
    secret = defaulted(
        registry,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"keep": base64.b64encode(b"old").decode(), "user": "b2xk"},
            "stringData": {"user": "admin"},
        },
    )
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert base64.b64decode(secret["data"]["user"]) == b"admin"
    assert base64.b64decode(secret["data"]["keep"]) == b"old"


def test_namespace_finalizer_phase_and_name_label(registry: ResourceRegistry) -> None:
    namespace = defaulted(registry, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    assert namespace["spec"] == {"finalizers": ["kubernetes"]}
    assert namespace["status"] == {"phase": "Active"}
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "shop"}


def test_persistent_volume_claim_volume_mode_and_pending_phase(registry: ResourceRegistry) -> None:
    claim = defaulted(
        registry,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}  # SetDefaults_PersistentVolumeClaim


@pytest.mark.parametrize(
    ("kind", "api_version", "status"),
    [
        ("Deployment", "apps/v1", {}),
        ("ReplicaSet", "apps/v1", {"replicas": 0}),
        ("Service", "v1", {"loadBalancer": {}}),
    ],
)
def test_new_objects_show_the_status_their_go_struct_always_marshals(
    registry: ResourceRegistry, kind: str, api_version: str, status: dict
) -> None:
    obj = defaulted(registry, {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "spec": {}})
    assert obj["status"] == status


def test_wrongly_typed_input_is_left_for_validation(registry: ResourceRegistry) -> None:
    deployment = defaulted(
        registry,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "w"},
            "spec": {"replicas": "three", "strategy": "fast", "template": {"spec": {"containers": "web"}}},
        },
    )
    assert deployment["spec"]["replicas"] == "three"
    assert deployment["spec"]["strategy"] == "fast"
    assert deployment["spec"]["template"]["spec"]["containers"] == "web"


def test_crd_structural_defaults_apply_where_the_parent_exists(registry: ResourceRegistry) -> None:
    knative_service = defaulted(
        registry,
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "stock"},
            "spec": {"template": {"spec": {"containers": [{"image": "img", "ports": [{"containerPort": 8080}]}]}}},
        },
    )
    container = knative_service["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    # No env was given, so the env defaults (configMapKeyRef.name "") have no parent to land in.
    assert "env" not in container
    assert "traffic" not in knative_service["spec"]


def test_a_job_gets_upstreams_defaults_selector_and_labels(registry: ResourceRegistry) -> None:
    job = defaulted(
        registry,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "pi", "uid": "1234"},
            "spec": {"template": {"spec": pod_spec(restartPolicy="Never")}},
        },
    )
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert (spec["completionMode"], spec["suspend"], spec["podReplacementPolicy"]) == (
        "NonIndexed",
        False,
        "TerminatingOrFailed",
    )
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}}
    labels = {
        "batch.kubernetes.io/controller-uid": "1234",
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "1234",
        "job-name": "pi",
    }
    assert spec["template"]["metadata"]["labels"] == labels
    assert job["metadata"]["labels"] == labels


def test_a_job_with_a_manual_selector_keeps_it(registry: ResourceRegistry) -> None:
    selector = {"matchLabels": {"app": "batch"}}
    job = defaulted(
        registry,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "pi", "uid": "1234"},
            "spec": {
                "manualSelector": True,
                "selector": selector,
                "parallelism": 3,
                "template": {"metadata": {"labels": {"app": "batch"}}, "spec": pod_spec(restartPolicy="Never")},
            },
        },
    )
    assert job["spec"]["selector"] == selector
    assert "completions" not in job["spec"]  # a work queue: parallelism without completions
    assert job["spec"]["template"]["metadata"]["labels"] == {"app": "batch"}


def test_a_stateful_set_gets_upstreams_defaults(registry: ResourceRegistry) -> None:
    stateful_set = defaulted(
        registry,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod_spec()},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
            },
        },
    )
    spec = stateful_set["spec"]
    assert (spec["replicas"], spec["podManagementPolicy"], spec["revisionHistoryLimit"]) == (1, "OrderedReady", 10)
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    claim = spec["volumeClaimTemplates"][0]
    assert (claim["apiVersion"], claim["kind"], claim["spec"]["volumeMode"]) == (
        "v1",
        "PersistentVolumeClaim",
        "Filesystem",
    )
    assert claim["status"] == {"phase": "Pending"}
