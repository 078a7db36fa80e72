"""The JupyterHub class's RBAC evaluated on localcluster: the rendered infra/jupyterhub/rbac applied, the
hub (by its own ServiceAccount token) making two attendees' and one instructor's objects exactly as
bookstore_hub.py does, then each of them asking with their own token.

localcluster serves no ResourceQuota or LimitRange (it would have to enforce them to serve them
faithfully), so those two objects of the template are left out here; tests/unit/infra validates them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from tests.integration.conftest import LocalCluster, poll_until
from tests.jupyterhub_hub import HUB, hub_module
from tests.manifest_validation import render

NOT_SERVED_HERE = {"ResourceQuota", "LimitRange"}


def token_of(api: client.ApiClient, namespace: str, account: str) -> str:
    request = {"spec": {"expirationSeconds": 3600}}
    return client.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request).status.token


@pytest.fixture(scope="module")
def tokens(cluster: LocalCluster) -> Iterator[dict[str, str]]:
    """Tokens of the hub, attendees ada and bob, and instructor carol, after the hub made their namespaces."""
    rendered = render(HUB / "rbac")
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rendered))
    cluster.kubectl("create", "serviceaccount", "hub", "-n", "jhub")  # the chart's
    api = cluster.api_client()
    hub_token = token_of(api, "jhub", "hub")
    hub = hub_module()
    for user, instructor in (("ada", False), ("bob", False), ("carol", True)):
        namespace = f"bookstore-{user}"
        labelled = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"bookstore.workshop/attendee": user}},
        }
        made = cluster.kubectl("--token", hub_token, "create", "-f", "-", input=json.dumps(labelled), check=False)
        assert made.returncode == 0, made.stderr  # KubeSpawner's _ensure_namespace, as the hub
        objects = hub.objects_for(namespace, user, instructor=instructor, templates=HUB)
        assert {obj["kind"] for obj in objects} >= NOT_SERVED_HERE
        served = [obj for obj in objects if obj["kind"] not in NOT_SERVED_HERE]
        poll_until(
            lambda ns=namespace: cluster.kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode,
            lambda code: code == 0,
            f"{namespace}'s default ServiceAccount",
        )
        applied = cluster.kubectl(
            "--token", hub_token, "create", "-f", "-", input=yaml.safe_dump_all(served), check=False
        )
        assert applied.returncode == 0, applied.stderr
    found = {
        "hub": hub_token,
        **{user: token_of(api, f"bookstore-{user}", "jupyter") for user in ("ada", "bob", "carol")},
    }
    api.close()
    yield found


def can(cluster: LocalCluster, token: str, *args: str) -> bool:
    answer = cluster.kubectl("--token", token, "auth", "can-i", *args, check=False)
    assert answer.stdout.strip() in ("yes", "no"), answer.stderr
    return answer.stdout.strip() == "yes"


def test_an_attendee_works_in_their_namespace_only(cluster: LocalCluster, tokens: dict[str, str]) -> None:
    ada = tokens["ada"]
    assert cluster.kubectl("--token", ada, "get", "pods", "-n", "bookstore-ada").returncode == 0
    refused = cluster.kubectl("--token", ada, "get", "pods", "-n", "bookstore-bob", check=False)
    assert (
        'pods is forbidden: User "system:serviceaccount:bookstore-ada:jupyter" cannot list resource "pods" in API '
        'group "" in the namespace "bookstore-bob"' in refused.stderr
    )
    for allowed in (
        ("create", "deployments.apps"),
        ("create", "services.serving.knative.dev"),
        ("create", "virtualservices.networking.istio.io"),
        ("create", "pods/exec"),
        ("create", "secrets"),
        ("get", "secrets/bookstore-admin"),
    ):
        assert can(cluster, ada, *allowed, "-n", "bookstore-ada"), allowed
    for refused_action in (
        ("list", "secrets"),
        ("get", "secrets/other"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("delete", "resourcequotas"),
        ("patch", "namespaces/bookstore-ada"),
    ):
        assert not can(cluster, ada, *refused_action, "-n", "bookstore-ada"), refused_action
    secrets = cluster.kubectl("--token", ada, "get", "secrets", "-n", "bookstore-ada", check=False)
    assert 'cannot list resource "secrets" in API group "" in the namespace "bookstore-ada"' in secrets.stderr
    assert not can(cluster, ada, "list", "namespaces")


def test_an_instructor_reads_every_attendee_namespace_and_changes_none(
    cluster: LocalCluster, tokens: dict[str, str]
) -> None:
    carol = tokens["carol"]
    listed = cluster.kubectl(
        "--token", carol, "get", "namespaces", "-l", "bookstore.workshop/attendee", "-o", "name"
    ).stdout.split()
    assert {"namespace/bookstore-ada", "namespace/bookstore-bob"} <= set(listed)
    for namespace in ("bookstore-ada", "bookstore-bob"):
        assert cluster.kubectl("--token", carol, "get", "pods,deployments,services", "-n", namespace).returncode == 0
        assert can(cluster, carol, "get", "secrets/bookstore-admin", "-n", namespace)
        assert not can(cluster, carol, "list", "secrets", "-n", namespace)
        assert not can(cluster, carol, "create", "pods", "-n", namespace)
        assert not can(cluster, carol, "delete", "deployments.apps", "-n", namespace)


def test_the_hub_binds_the_class_roles_and_nothing_more(cluster: LocalCluster, tokens: dict[str, str]) -> None:
    takeover = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "takeover", "namespace": "bookstore-ada"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "jupyter", "namespace": "bookstore-ada"}],
    }
    refused = cluster.kubectl("--token", tokens["hub"], "create", "-f", "-", input=json.dumps(takeover), check=False)
    assert refused.returncode == 1
    assert "is attempting to grant RBAC permissions not currently held" in refused.stderr
    assert not can(cluster, tokens["hub"], "get", "secrets", "-n", "kube-system")
