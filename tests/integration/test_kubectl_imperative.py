"""The first commands of most tutorials: kubectl's generators, which send protobuf, and its own validation.

kubectl 1.37's typed clients send `application/vnd.kubernetes.protobuf` bodies; for a kind the
server's OpenAPI v3 does not list, and for `kind: List` files, kubectl validates with OpenAPI v2,
which it reads only as protobuf.
"""

from __future__ import annotations

import base64
import json

from tests.integration.conftest import LocalCluster, poll_until


def get(cluster: LocalCluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_create_namespace_configmap_and_secret(cluster: LocalCluster) -> None:
    assert "namespace/tutorial created" in cluster.kubectl("create", "namespace", "tutorial").stdout
    assert get(cluster, "namespace", "tutorial")["status"]["phase"] == "Active"
    cluster.kubectl("create", "configmap", "settings", "-n", "tutorial", "--from-literal=colour=blue")
    assert get(cluster, "configmap", "settings", "-n", "tutorial")["data"] == {"colour": "blue"}
    cluster.kubectl("create", "secret", "generic", "login", "-n", "tutorial", "--from-literal=password=s3cret")
    secret = get(cluster, "secret", "login", "-n", "tutorial")
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
    cluster.kubectl("delete", "namespace", "tutorial", "--wait=false")


def test_create_deployment_keeps_what_was_asked_and_gets_the_defaults(cluster: LocalCluster) -> None:
    cluster.kubectl("create", "deployment", "paused", "--image=nginx:1.27", "--replicas=0", "--port=8080")
    deployment = get(cluster, "deployment", "paused")
    assert deployment["spec"]["replicas"] == 0  # a pointer field set to zero stays zero
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "paused"}}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "nginx:1.27"
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert "stdin" not in container  # a zero bool kubectl sends is omitted, as the apiserver's JSON does
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    cluster.kubectl("delete", "deployment", "paused")


def test_create_job_from_the_generator(cluster: LocalCluster) -> None:
    cluster.kubectl("create", "job", "once", "--image=busybox", "--", "echo", "hi")
    job = get(cluster, "job", "once")
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["echo", "hi"] and container["image"] == "busybox"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 6  # SetDefaults_Job on what kubectl sent
    cluster.kubectl("delete", "job", "once", "--wait=false")


def test_run_and_debug_copy_to(cluster: LocalCluster) -> None:
    cluster.kubectl("run", "lone", "--image=busybox", "--restart=Never", "--labels=tier=test", "--", "sleep", "60")
    pod = get(cluster, "pod", "lone")
    assert pod["metadata"]["labels"] == {"tier": "test"}
    assert pod["spec"]["containers"][0]["args"] == ["sleep", "60"]
    assert pod["spec"]["restartPolicy"] == "Never"
    cluster.kubectl("debug", "lone", "--copy-to=lone-debug", "--image=busybox", "--container=shell", "--", "sleep", "1")
    copy = poll_until(
        lambda: get(cluster, "pod", "lone-debug"), lambda p: len(p["spec"]["containers"]) == 2, "the debug copy"
    )
    assert [c["name"] for c in copy["spec"]["containers"]] == ["lone", "shell"]
    cluster.kubectl("delete", "pod", "lone", "lone-debug", "--wait=false")


def test_create_service_account_role_binding_and_service(cluster: LocalCluster) -> None:
    cluster.kubectl("create", "serviceaccount", "reader")
    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    cluster.kubectl("create", "rolebinding", "reads", "--role=pod-reader", "--serviceaccount=bookstore:reader")
    role = get(cluster, "role", "pod-reader")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    binding = get(cluster, "rolebinding", "reads")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "reader", "namespace": "bookstore"}]
    cluster.kubectl("create", "service", "clusterip", "front", "--tcp=80:8080")
    service = get(cluster, "service", "front")
    assert service["spec"]["ports"][0]["targetPort"] == 8080
    cluster.kubectl("delete", "service", "front")
    cluster.kubectl("delete", "rolebinding", "reads")
    cluster.kubectl("delete", "role", "pod-reader")
    cluster.kubectl("delete", "serviceaccount", "reader")


def test_a_list_file_is_validated_item_by_item_and_applied(cluster: LocalCluster) -> None:
    items = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "listed-a"}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "listed-b"}, "bogus": True},
    ]
    wrong = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    refused = cluster.kubectl("apply", "-f", "-", input=wrong, check=False)
    assert refused.returncode != 0
    assert 'unknown field "bogus"' in refused.stderr and "ConfigMap" in refused.stderr
    right = json.dumps({"apiVersion": "v1", "kind": "List", "items": items[:1]})
    assert "configmap/listed-a created" in cluster.kubectl("apply", "-f", "-", input=right).stdout
    cluster.kubectl("delete", "configmap", "listed-a")


def test_an_unknown_kind_is_named_as_upstream_names_it(cluster: LocalCluster) -> None:
    manifest = "apiVersion: v1\nkind: Widget\nmetadata:\n  name: w\n"
    result = cluster.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert 'no matches for kind "Widget" in version "v1"' in result.stderr
    assert "ensure CRDs are installed first" in result.stderr


def test_the_served_crds_can_be_read_not_written(cluster: LocalCluster) -> None:
    names = cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/services.serving.knative.dev" in names
    assert "customresourcedefinition.apiextensions.k8s.io/virtualservices.networking.istio.io" in names
    crd = get(cluster, "crd", "virtualservices.networking.istio.io")
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established == {"NamesAccepted": "True", "Established": "True"}
    refused = cluster.kubectl("delete", "crd", "services.serving.knative.dev", check=False)
    assert refused.returncode != 0 and "fixed set of custom resource definitions" in refused.stderr
