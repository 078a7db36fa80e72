"""Knative Serving on a real localcluster, with a tiny echo service no lab uses: the objects a Service
makes, revisions per template change, traffic and tags in the status, failing revisions as upstream
reports them, the webhook's refusals, scale to zero, and kubectl get, describe and wait on the kinds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from localcluster.settings import Settings
from tests.integration.conftest import LocalCluster, poll_until

pytestmark = pytest.mark.integration

NAMESPACE = "bookstore"
IMAGE = "ghcr.io/cloud-native-bookstore/workshop:latest"
ECHO = str(Path(__file__).parent / "podprograms" / "echo_server.py")
GROUP, VERSION = "serving.knative.dev", "v1"


def ksvc(
    name: str, *, annotations: dict[str, str] | None = None, env: dict[str, str] | None = None, **spec: Any
) -> dict:
    container: dict[str, Any] = {"image": IMAGE, "command": ["python", ECHO]}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    template: dict[str, Any] = {"spec": {"containers": [container]}}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"template": template, **spec},
    }


@pytest.fixture(scope="module")
def custom(cluster: LocalCluster) -> Iterator[client.CustomObjectsApi]:
    api = cluster.api_client()
    try:
        yield client.CustomObjectsApi(api)
    finally:
        api.close()


def apply(cluster: LocalCluster, obj: dict, *, check: bool = True) -> Any:
    return cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(obj), check=check)


def get(custom: client.CustomObjectsApi, plural: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)


def condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def wait_ready(cluster: LocalCluster, name: str) -> None:
    cluster.kubectl("wait", "--for=condition=Ready", f"ksvc/{name}", "--timeout=90s", timeout=100)


def test_a_service_makes_a_configuration_a_route_a_revision_and_its_deployment(
    cluster: LocalCluster, custom: client.CustomObjectsApi
) -> None:
    apply(cluster, ksvc("echo"))
    wait_ready(cluster, "echo")
    service = get(custom, "services", "echo")
    assert service["status"]["url"] == "http://echo.bookstore.svc.cluster.local"
    assert (
        service["status"]["latestCreatedRevisionName"] == service["status"]["latestReadyRevisionName"] == "echo-00001"
    )
    assert service["status"]["traffic"] == [{"revisionName": "echo-00001", "latestRevision": True, "percent": 100}]
    assert {c["type"]: c["status"] for c in service["status"]["conditions"]} == {
        "ConfigurationsReady": "True",
        "Ready": "True",
        "RoutesReady": "True",
    }
    assert service["status"]["observedGeneration"] == service["metadata"]["generation"]

    revision = get(custom, "revisions", "echo-00001")
    labels = revision["metadata"]["labels"]
    assert labels["serving.knative.dev/service"] == "echo"
    assert labels["serving.knative.dev/configuration"] == "echo"
    assert labels["serving.knative.dev/configurationGeneration"] == "1"
    assert labels["serving.knative.dev/routingState"] == "active"
    assert revision["spec"]["containers"][0]["name"] == "user-container"
    assert revision["spec"]["timeoutSeconds"] == 300

    pods = cluster.kubectl("get", "pods", "-l", "serving.knative.dev/revision=echo-00001", "-o", "json")
    (pod,) = json.loads(pods.stdout)["items"]
    pod_labels = pod["metadata"]["labels"]
    assert pod_labels["serving.knative.dev/revisionUID"] == revision["metadata"]["uid"]
    assert pod_labels["serving.knative.dev/configurationGeneration"] == "1"
    assert pod_labels["app"] == "echo-00001"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["PORT"] == "8080" and env["K_REVISION"] == "echo-00001" and env["K_SERVICE"] == "echo"
    owner = pod["metadata"]["ownerReferences"][0]["name"]
    assert owner.startswith("echo-00001-deployment-")


def test_kubectl_get_shows_upstreams_columns(cluster: LocalCluster) -> None:
    services = cluster.kubectl("get", "ksvc", "echo").stdout.splitlines()
    assert services[0].split() == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON", "AGE"]
    assert services[1].split()[:5] == [
        "echo",
        "http://echo.bookstore.svc.cluster.local",
        "echo-00001",
        "echo-00001",
        "True",
    ]
    revisions = cluster.kubectl("get", "revision", "echo-00001").stdout.splitlines()
    assert revisions[0].split()[:4] == ["NAME", "CONFIG", "NAME", "GENERATION"]
    assert revisions[1].split()[:4] == ["echo-00001", "echo", "1", "True"]
    routes = cluster.kubectl("get", "route,configuration", "echo").stdout
    assert "http://echo.bookstore.svc.cluster.local   True" in routes
    described = " ".join(cluster.kubectl("describe", "ksvc", "echo").stdout.split())
    assert "Latest Ready Revision Name: echo-00001" in described
    assert 'Created Configuration "echo"' in described


def test_each_template_change_makes_the_next_revision_and_moves_the_traffic(
    cluster: LocalCluster, custom: client.CustomObjectsApi
) -> None:
    apply(cluster, ksvc("echo", env={"GREETING": "v2"}))
    poll_until(
        lambda: get(custom, "services", "echo")["status"],
        lambda status: (
            status.get("latestReadyRevisionName") == "echo-00002"
            and status.get("traffic", [{}])[0].get("revisionName") == "echo-00002"
        ),
        "echo-00002 to take the traffic",
        timeout=90,
    )
    first = get(custom, "revisions", "echo-00001")
    assert first["metadata"]["labels"]["serving.knative.dev/routingState"] == "reserve"
    second = get(custom, "revisions", "echo-00002")
    assert second["metadata"]["labels"]["serving.knative.dev/configurationGeneration"] == "2"


def test_traffic_by_percent_and_tag_in_the_status(cluster: LocalCluster, custom: client.CustomObjectsApi) -> None:
    split = ksvc(
        "echo",
        env={"GREETING": "v2"},
        traffic=[
            {"revisionName": "echo-00001", "percent": 50, "tag": "v1"},
            {"latestRevision": True, "percent": 50},
        ],
    )
    apply(cluster, split)
    status = poll_until(
        lambda: get(custom, "services", "echo")["status"],
        lambda status: len(status.get("traffic") or []) == 2 and condition({"status": status})["status"] == "True",
        "the 50/50 split to be served",
        timeout=60,
    )
    assert status["traffic"] == [
        {
            "tag": "v1",
            "revisionName": "echo-00001",
            "latestRevision": False,
            "percent": 50,
            "url": "http://v1-echo.bookstore.svc.cluster.local",
        },
        {"revisionName": "echo-00002", "latestRevision": True, "percent": 50},
    ]
    placeholder = json.loads(cluster.kubectl("get", "service", "v1-echo", "-o", "json").stdout)
    assert placeholder["spec"] == {
        **placeholder["spec"],
        "type": "ExternalName",
        "externalName": "v1-echo.bookstore.svc.cluster.local",
    }
    first = get(custom, "revisions", "echo-00001")
    assert first["metadata"]["labels"]["serving.knative.dev/routingState"] == "active"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"traffic": [{"latestRevision": True, "percent": 90}]}, "Traffic targets sum to 90, want 100: spec.traffic"),
        (
            {
                "traffic": [
                    {"latestRevision": True, "percent": 50, "tag": "a"},
                    {"revisionName": "echo-00001", "percent": 50, "tag": "a"},
                ]
            },
            'Multiple definitions for "a": spec.traffic[0].tag, spec.traffic[1].tag',
        ),
        (
            {"traffic": [{"revisionName": "-echo1", "percent": 100}]},
            'invalid key name "-echo1": spec.traffic[0].revisionName',
        ),
    ],
)
def test_the_webhook_refuses_with_upstreams_words(cluster: LocalCluster, change: dict, message: str) -> None:
    refused = apply(cluster, ksvc("refused", **change), check=False)
    assert refused.returncode == 1
    assert (
        'admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: '
        in refused.stderr
    )
    assert message in refused.stderr


def test_a_refusal_is_a_status_with_field_paths(cluster: LocalCluster) -> None:
    with cluster.http() as api:
        answer = api.post(
            f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/services",
            json=ksvc("refused", traffic=[{"latestRevision": True, "percent": 90}]),
        )
    assert answer.status_code == 400
    status = answer.json()
    assert status["kind"] == "Status" and status["reason"] == "BadRequest"
    assert status["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": "Traffic targets sum to 90, want 100", "field": "spec.traffic"}
    ]


def test_a_revision_whose_command_fails_fails_the_service(
    cluster: LocalCluster, custom: client.CustomObjectsApi
) -> None:
    broken = ksvc("broken")
    broken["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "python",
        "-c",
        "import sys; print('no such module: storefrnt', file=sys.stderr); sys.exit(3)",
    ]
    apply(cluster, broken)
    revision = poll_until(
        lambda: get(custom, "revisions", "broken-00001"),
        lambda obj: condition(obj).get("status") == "False",
        "the broken revision to fail",
        timeout=90,
    )
    healthy = condition(revision, "ContainerHealthy")
    assert healthy["reason"] == "ExitCode3"
    # The user container's terminationMessagePolicy is FallbackToLogsOnError: the message is its output's end.
    assert healthy["message"] == "Container failed with: no such module: storefrnt\n"
    assert condition(revision)["reason"] == "ExitCode3"
    service = poll_until(
        lambda: get(custom, "services", "broken"),
        lambda obj: condition(obj).get("status") == "False",
        "the service to report the failed revision",
        timeout=30,
    )
    configurations = condition(service, "ConfigurationsReady")
    assert configurations["reason"] == "RevisionFailed"
    assert configurations["message"].startswith('Revision "broken-00001" failed with message: Container failed with: ')
    # As upstream, Ready then takes the Route's word, set after the Configuration's.
    assert condition(service)["reason"] == "RevisionMissing"
    assert condition(service)["message"] == 'Configuration "broken" does not have any ready Revision.'
    waited = cluster.kubectl("wait", "--for=condition=Ready", "ksvc/broken", "--timeout=2s", check=False)
    assert waited.returncode != 0


def test_a_foreign_image_fails_the_revision_before_any_pod(
    cluster: LocalCluster, custom: client.CustomObjectsApi
) -> None:
    foreign = ksvc("foreign")
    foreign["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    apply(cluster, foreign)
    revision = poll_until(
        lambda: get(custom, "revisions", "foreign-00001"),
        lambda obj: condition(obj).get("status") == "False",
        "the revision with a foreign image to fail",
        timeout=30,
    )
    healthy = condition(revision, "ContainerHealthy")
    assert healthy["reason"] == "ContainerMissing"
    assert healthy["message"].startswith('Unable to fetch image "nginx:1.27": failed to resolve image to digest: ')
    deployments = cluster.kubectl("get", "deployments", "-l", "serving.knative.dev/service=foreign", "-o", "name")
    assert deployments.stdout.strip() == ""
    route = poll_until(
        lambda: get(custom, "routes", "foreign"),
        lambda obj: condition(obj, "AllTrafficAssigned").get("status") == "False",
        "the route to give up on the configuration",
        timeout=30,
    )
    assert (
        condition(route, "AllTrafficAssigned")["message"] == 'Configuration "foreign" does not have any ready Revision.'
    )


def test_a_revision_that_never_gets_ready_fails_at_its_progress_deadline(
    cluster: LocalCluster, custom: client.CustomObjectsApi
) -> None:
    unready = ksvc("unready", annotations={"serving.knative.dev/progress-deadline": "5s"})
    unready["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/nowhere-ready"}}
    # The echo server answers every path 200: point the probe at a port nothing listens on instead.
    unready["spec"]["template"]["spec"]["containers"][0]["command"] = ["python", "-c", "import time; time.sleep(3600)"]
    apply(cluster, unready)
    revision = poll_until(
        lambda: get(custom, "revisions", "unready-00001"),
        lambda obj: condition(obj, "ResourcesAvailable").get("status") == "False",
        "the revision to pass its progress deadline",
        timeout=60,
    )
    available = condition(revision, "ResourcesAvailable")
    assert available["reason"] == "ProgressDeadlineExceeded"
    assert condition(revision)["status"] == "False"


def test_without_traffic_a_revision_goes_to_zero_and_stays_ready(
    cluster: LocalCluster, custom: client.CustomObjectsApi
) -> None:
    apply(cluster, ksvc("idle", annotations={"autoscaling.knative.dev/window": "6s"}))
    wait_ready(cluster, "idle")
    revision = poll_until(
        lambda: get(custom, "revisions", "idle-00001"),
        lambda obj: obj["status"].get("actualReplicas") == 0 and condition(obj, "Active").get("status") == "False",
        "the idle revision to scale to zero",
        timeout=90,
    )
    assert condition(revision, "Active")["reason"] == "NoTraffic"
    assert condition(revision)["status"] == "True"
    deployment = json.loads(cluster.kubectl("get", "deployment", "idle-00001-deployment", "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 0


def test_config_maps_come_from_the_reference_files_and_are_validated(cluster: LocalCluster) -> None:
    configmap = json.loads(
        cluster.kubectl("get", "configmap", "config-autoscaler", "-n", "knative-serving", "-o", "json").stdout
    )
    reference = yaml.safe_load((Settings().shared_dir / "reference" / "knative-config-autoscaler.yaml").read_text())
    assert configmap["data"] == reference["data"]
    refused = cluster.kubectl(
        "patch",
        "configmap",
        "config-autoscaler",
        "-n",
        "knative-serving",
        "--type=merge",
        "-p",
        '{"data": {"stable-window": "5s"}}',
        check=False,
    )
    assert refused.returncode == 1
    assert "config.webhook.serving.knative.dev" in refused.stderr and "stable-window = 5s" in refused.stderr
