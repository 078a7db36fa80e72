"""Knative Serving on a real localcluster, with a tiny echo service no lab uses: the objects a Service
makes, revisions per template change, traffic and tags in the status, failing revisions as upstream
reports them, the webhook's refusals, scale to zero, and kubectl get, describe and wait on the kinds."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
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
    found: dict[str, Any] = custom.get_namespaced_custom_object(  # type: ignore[assignment]
        GROUP, VERSION, NAMESPACE, plural, name
    )
    return found


def condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def await_false(
    custom: client.CustomObjectsApi, plural: str, name: str, what: str, kind: str = "Ready", timeout: float = 30
) -> dict[str, Any]:
    """The object once its `kind` condition is False (a failure Knative reports); fails naming `what` if never."""
    return poll_until(
        lambda: get(custom, plural, name), lambda obj: condition(obj, kind).get("status") == "False", what, timeout
    )


def ready_then_idle(cluster: LocalCluster, custom: client.CustomObjectsApi, name: str) -> None:
    """Until Knative Service `name` is Ready and its first revision, without traffic, went to zero."""
    wait_ready(cluster, name)
    poll_until(
        lambda: get(custom, "revisions", f"{name}-00001")["status"].get("actualReplicas"),
        lambda replicas: replicas == 0,
        f"{name}-00001 to scale to zero",
        timeout=90,
    )


def described(cluster: LocalCluster, *what: str) -> str:
    """`kubectl describe` of each, for an assertion's message: what the cluster said when a wait gave up."""
    return "\n".join(cluster.kubectl("describe", *item.split(), check=False).stdout for item in what)


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
        "import sys, time; time.sleep(0.5); print('no such module: storefrnt', file=sys.stderr); sys.exit(3)",
    ]
    apply(cluster, broken)
    try:
        revision = await_false(custom, "revisions", "broken-00001", "the broken revision to fail", timeout=90)
    except AssertionError as failure:
        raise AssertionError(
            f"{failure}\n{described(cluster, 'revision broken-00001', 'deployment', 'pods')}"
        ) from None
    healthy = condition(revision, "ContainerHealthy")
    assert healthy["reason"] == "ExitCode3"
    # The user container's terminationMessagePolicy is FallbackToLogsOnError: the message is its output's end.
    assert healthy["message"] == "Container failed with: no such module: storefrnt\n"
    assert condition(revision)["reason"] == "ExitCode3"
    service = await_false(custom, "services", "broken", "the service to report the failed revision")
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
    revision = await_false(custom, "revisions", "foreign-00001", "the revision with a foreign image to fail")
    healthy = condition(revision, "ContainerHealthy")
    assert healthy["reason"] == "ContainerMissing"
    assert healthy["message"].startswith('Unable to fetch image "nginx:1.27": failed to resolve image to digest: ')
    deployments = cluster.kubectl("get", "deployments", "-l", "serving.knative.dev/service=foreign", "-o", "name")
    assert deployments.stdout.strip() == ""
    route = await_false(
        custom, "routes", "foreign", "the route to give up on the configuration", kind="AllTrafficAssigned"
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
    revision = await_false(
        custom,
        "revisions",
        "unready-00001",
        "the revision to pass its progress deadline",
        kind="ResourcesAvailable",
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


# -- the data plane: the activator, the split, tags, the concurrency limit and the autoscaler ------------


@pytest.fixture(scope="module")
def http(cluster: LocalCluster) -> Iterator[httpx.Client]:
    """A client through the cluster's service proxy, as a notebook's labkit.connect() has one."""
    proxy = json.loads((cluster.home / "localcluster.json").read_text())["proxy"]
    with httpx.Client(
        proxy=proxy, timeout=60, trust_env=False, headers={"x-localcluster-namespace": NAMESPACE}
    ) as client_:
        yield client_


def ready_pods(cluster: LocalCluster, revision: str) -> int:
    pods = json.loads(
        cluster.kubectl("get", "pods", "-l", f"serving.knative.dev/revision={revision}", "-o", "json").stdout
    )
    return sum(
        1
        for pod in pods["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
    )


def test_a_request_at_zero_is_held_until_a_pod_answers(
    cluster: LocalCluster, custom: client.CustomObjectsApi, http: httpx.Client
) -> None:
    apply(cluster, ksvc("cold", annotations={"autoscaling.knative.dev/window": "6s"}))
    ready_then_idle(cluster, custom, "cold")
    assert ready_pods(cluster, "cold-00001") == 0
    answer = http.get("http://cold.bookstore.svc.cluster.local/first")
    assert answer.status_code == 200
    assert answer.json()["revision"] == "cold-00001" and answer.json()["path"] == "/first"
    # The short names the placeholder Service gives the route reach it too.
    assert http.get("http://cold/again").json()["revision"] == "cold-00001"
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=cold-00001-deployment").stdout
    assert "Scaled up replica set" in events and "from 0 to 1" in events


def test_live_responses_follow_the_declared_split(
    cluster: LocalCluster, custom: client.CustomObjectsApi, http: httpx.Client
) -> None:
    split = ksvc(
        "split",
        env={"GREETING": "two"},
        traffic=[{"revisionName": "split-00001", "percent": 30, "tag": "one"}, {"latestRevision": True, "percent": 70}],
    )
    apply(cluster, ksvc("split"))
    wait_ready(cluster, "split")
    apply(cluster, split)
    poll_until(
        lambda: get(custom, "services", "split")["status"],
        lambda status: len(status.get("traffic") or []) == 2 and condition({"status": status}).get("status") == "True",
        "the 30/70 split to be served",
        timeout=90,
    )
    served = [http.get("http://split.bookstore.svc.cluster.local/").json()["revision"] for _ in range(300)]
    first = served.count("split-00001")
    assert first + served.count("split-00002") == 300
    # Binomial(300, 0.3): mean 90, sd 7.9; 4.5 sd either side makes a false alarm a one-in-150000 event.
    assert abs(first - 90) <= 4.5 * math.sqrt(300 * 0.3 * 0.7), first
    tagged = {http.get("http://one-split.bookstore.svc.cluster.local/").json()["revision"] for _ in range(10)}
    assert tagged == {"split-00001"}
    assert http.get("http://one-split/").json()["revision"] == "split-00001"


def test_unknown_knative_hosts_and_routes_without_traffic_are_clear_errors(http: httpx.Client) -> None:
    missing = http.get("http://nosuch.bookstore.svc.cluster.local/")
    assert missing.status_code == 503 and "nosuch" in missing.text
    foreign = http.get("http://foreign.bookstore.svc.cluster.local/")
    assert foreign.status_code == 503
    assert "has no traffic assigned yet" in foreign.text


def test_container_concurrency_is_a_hard_limit_per_pod(cluster: LocalCluster, http: httpx.Client) -> None:
    limited = ksvc("limited", annotations={"autoscaling.knative.dev/max-scale": "1"})
    limited["spec"]["template"]["spec"]["containerConcurrency"] = 1
    apply(cluster, limited)
    wait_ready(cluster, "limited")
    url = "http://limited.bookstore.svc.cluster.local/?sleep=0.5"
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: http.get(url), range(4)))
    elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * 4
    # One pod, one request at a time: four half-second requests take two seconds, not half of one.
    assert elapsed >= 1.9, elapsed


def test_load_scales_a_revision_out_and_idleness_back_in(
    cluster: LocalCluster, custom: client.CustomObjectsApi, http: httpx.Client
) -> None:
    annotations = {
        "autoscaling.knative.dev/window": "6s",
        "autoscaling.knative.dev/target": "1",
        "autoscaling.knative.dev/max-scale": "3",
    }
    apply(cluster, ksvc("busy", annotations=annotations))
    wait_ready(cluster, "busy")
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            http.get("http://busy.bookstore.svc.cluster.local/?sleep=0.3")

    workers = [threading.Thread(target=keep_busy, daemon=True) for _ in range(5)]
    for worker in workers:
        worker.start()
    try:
        poll_until(
            lambda: ready_pods(cluster, "busy-00001"), lambda ready: ready >= 2, "busy-00001 to scale out", timeout=90
        )
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
    revision = get(custom, "revisions", "busy-00001")
    assert revision["status"]["desiredReplicas"] <= 3  # max-scale bounds the decision
    poll_until(
        lambda: get(custom, "revisions", "busy-00001")["status"].get("actualReplicas"),
        lambda replicas: replicas is not None and replicas <= 1,
        "busy-00001 to scale back in",
        timeout=120,
    )


def test_a_held_request_times_out_as_the_activator_answers(
    cluster: LocalCluster, custom: client.CustomObjectsApi, http: httpx.Client
) -> None:
    """A revision that served, went to zero, and now cannot start: held requests end at timeoutSeconds."""
    cluster.kubectl("create", "configmap", "stuck-mode", "--from-literal=mode=serve")
    stuck = ksvc("stuck", annotations={"autoscaling.knative.dev/window": "6s"})
    spec = stuck["spec"]["template"]["spec"]
    spec["timeoutSeconds"] = 3
    spec["volumes"] = [{"name": "mode", "configMap": {"name": "stuck-mode"}}]
    container = spec["containers"][0]
    container["volumeMounts"] = [{"name": "mode", "mountPath": "/etc/mode"}]
    container["env"] = [{"name": "MODE_FILE", "value": "/etc/mode/mode"}]
    container["command"] = [
        "sh",
        "-c",
        f'if [ "$(cat "$MODE_FILE")" = serve ]; then exec python {ECHO}; else exec sleep 3600; fi',
    ]
    apply(cluster, stuck)
    ready_then_idle(cluster, custom, "stuck")
    cluster.kubectl("patch", "configmap", "stuck-mode", "-p", '{"data": {"mode": "hang"}}')
    started = time.monotonic()
    answer = http.get("http://stuck.bookstore.svc.cluster.local/")
    assert (answer.status_code, answer.text) == (504, "activator request timeout")
    assert 2.5 <= time.monotonic() - started < 30
