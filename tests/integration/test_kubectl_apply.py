"""`kubectl apply`, client- and server-side, of objects and manifest sets nobody here wrote."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import LocalCluster

BARE = {
    "namespace": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bare-ns\n",
    "serviceaccount": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: bare-sa\n",
    "configmap": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bare-cm\n",
}


@pytest.mark.parametrize("kind", sorted(BARE))
def test_server_side_apply_of_an_object_with_nothing_but_a_name_works_twice(cluster: LocalCluster, kind: str) -> None:
    manifest = BARE[kind]
    first = cluster.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    assert "serverside-applied" in first.stdout
    again = cluster.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    assert "serverside-applied" in again.stdout
    cluster.kubectl("delete", "-f", "-", "--wait=false", input=manifest)


def test_server_side_apply_after_a_client_side_apply_takes_over(cluster: LocalCluster) -> None:
    manifest = BARE["namespace"].replace("bare-ns", "csa-then-ssa")
    assert "created" in cluster.kubectl("apply", "-f", "-", input=manifest).stdout
    for _ in range(2):
        assert "serverside-applied" in cluster.kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    cluster.kubectl("delete", "namespace", "csa-then-ssa", "--wait=false")


def manifest_set(prefix: str) -> str:
    """16 objects of four kinds, as an application's manifests come: Deployments, Services, accounts, config."""
    documents = []
    for name in ("front", "cart", "catalog", "checkout"):
        app = f"{prefix}-{name}"
        documents += [
            f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {app}\n",
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}\ndata:\n  LOG_LEVEL: info\n  APP: {name}\n",
            f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
  labels: {{app: {app}}}
spec:
  replicas: 0
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      serviceAccountName: {app}
      containers:
        - name: server
          image: example.com/{name}:1.0
          ports: [{{name: http, containerPort: 8080}}]
          envFrom: [{{configMapRef: {{name: {app}}}}}]
          resources:
            requests: {{cpu: 100m, memory: 64Mi}}
""",
            f"""apiVersion: v1
kind: Service
metadata:
  name: {app}
spec:
  selector: {{app: {app}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
""",
        ]
    return "---\n".join(documents)


def _versions(cluster: LocalCluster, prefix: str) -> dict[str, str]:
    listed = json.loads(cluster.kubectl("get", "serviceaccounts,configmaps,services,deployments", "-o", "json").stdout)
    return {
        f"{item['kind']}/{item['metadata']['name']}": (
            str(item["metadata"].get("generation"))
            if item["kind"] == "Deployment"
            else item["metadata"]["resourceVersion"]
        )
        for item in listed["items"]
        if item["metadata"]["name"].startswith(prefix)
    }


def test_a_manifest_set_applies_client_side_twice_the_second_time_unchanged(cluster: LocalCluster) -> None:
    manifests = manifest_set("csa")
    first = cluster.kubectl("apply", "-f", "-", input=manifests).stdout.splitlines()
    assert len(first) == 16 and all(line.endswith(" created") for line in first), first
    before = _versions(cluster, "csa")
    second = cluster.kubectl("apply", "-f", "-", input=manifests).stdout.splitlines()
    assert len(second) == 16 and all(line.endswith(" unchanged") for line in second), second
    assert _versions(cluster, "csa") == before
    # The same set taken over by server-side apply, as `kubectl apply --server-side` migrates it.
    migrated = cluster.kubectl("apply", "--server-side", "-f", "-", input=manifests).stdout.splitlines()
    assert len(migrated) == 16 and all(line.endswith(" serverside-applied") for line in migrated), migrated
    cluster.kubectl("delete", "-f", "-", "--wait=false", input=manifests)


def test_a_manifest_set_applies_server_side_twice_the_second_time_a_no_op(cluster: LocalCluster) -> None:
    manifests = manifest_set("ssa")
    first = cluster.kubectl("apply", "--server-side", "-f", "-", input=manifests).stdout.splitlines()
    assert len(first) == 16 and all(line.endswith(" serverside-applied") for line in first), first
    before = _versions(cluster, "ssa")
    assert len(before) == 16
    second = cluster.kubectl("apply", "--server-side", "-f", "-", input=manifests).stdout.splitlines()
    assert len(second) == 16 and all(line.endswith(" serverside-applied") for line in second), second
    assert _versions(cluster, "ssa") == before  # nothing written: no resourceVersion or generation moved
    cluster.kubectl("delete", "-f", "-", "--wait=false", input=manifests)
