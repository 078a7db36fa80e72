"""RBAC on a real localcluster: ServiceAccount tokens, namespaces fenced by RoleBindings, impersonation,
the review APIs, and the token a pod gets, as kubectl 1.37 and the official client see them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from kubernetes import client

from tests.integration.conftest import LocalCluster, poll_until

ATTENDEE = "system:serviceaccount:a:jupyter"


def apply(cluster: LocalCluster, manifest: str, *args: str, check: bool = True):
    return cluster.kubectl("apply", "-f", "-", *args, input=manifest, check=check)


@pytest.fixture(scope="module")
def attendee_token(cluster: LocalCluster, api: client.ApiClient) -> str:
    """Namespaces a and b; ServiceAccount a/jupyter may edit in a, and nothing in b."""
    apply(
        cluster,
        """
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: v1
kind: Namespace
metadata: {name: b}
""",
    )
    poll_until(
        lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", "a", check=False).returncode,
        lambda code: code == 0,
        "namespace a's default ServiceAccount",
    )
    apply(
        cluster,
        """
apiVersion: v1
kind: ServiceAccount
metadata: {name: jupyter, namespace: a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: attendee, namespace: a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: attendee}
subjects: [{kind: ServiceAccount, name: jupyter}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: attendee, namespace: a}
rules:
  - apiGroups: ["", apps]
    resources: [pods, pods/log, services, configmaps, deployments]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [rolebindings, roles]
    verbs: [get, list, create]
""",
    )
    request = {"spec": {"expirationSeconds": 3600}}
    answer = client.CoreV1Api(api).create_namespaced_service_account_token("jupyter", "a", request)
    return answer.status.token


def as_attendee(cluster: LocalCluster, token: str, *args: str, check: bool = False):
    return cluster.kubectl("--token", token, *args, check=check)


def test_a_token_for_attendee_a_lists_a_pods_and_gets_403_in_b_and_on_secrets(
    cluster: LocalCluster, attendee_token: str
) -> None:
    own = as_attendee(cluster, attendee_token, "get", "pods", "-n", "a")
    assert own.returncode == 0, own.stderr
    other = as_attendee(cluster, attendee_token, "get", "pods", "-n", "b")
    assert other.returncode == 1
    assert (
        'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:a:jupyter" cannot list '
        'resource "pods" in API group "" in the namespace "b"' in other.stderr
    )
    secrets = as_attendee(cluster, attendee_token, "get", "secrets", "-n", "a")
    assert 'cannot list resource "secrets" in API group "" in the namespace "a"' in secrets.stderr
    nodes = as_attendee(cluster, attendee_token, "get", "namespaces")
    assert 'cannot list resource "namespaces" in API group "" at the cluster scope' in nodes.stderr


def test_the_attendee_works_in_its_namespace_with_apply(cluster: LocalCluster, attendee_token: str) -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes, namespace: a}\ndata: {lab: '01'}\n"
    created = cluster.kubectl("--token", attendee_token, "apply", "-f", "-", input=manifest, check=False)
    assert created.returncode == 0, created.stderr
    elsewhere = manifest.replace("namespace: a", "namespace: b")
    refused = cluster.kubectl("--token", attendee_token, "apply", "-f", "-", input=elsewhere, check=False)
    assert refused.returncode == 1 and 'in the namespace "b"' in refused.stderr


def test_impersonation_is_for_whom_may_impersonate(cluster: LocalCluster, attendee_token: str) -> None:
    as_attendee_by_admin = cluster.kubectl("get", "pods", "-n", "b", f"--as={ATTENDEE}", check=False)
    assert as_attendee_by_admin.returncode == 1
    assert f'User "{ATTENDEE}" cannot list resource "pods"' in as_attendee_by_admin.stderr
    assert cluster.kubectl("get", "pods", "-n", "a", f"--as={ATTENDEE}").returncode == 0
    escalating = as_attendee(cluster, attendee_token, "get", "pods", "-n", "b", "--as=kubernetes-admin")
    assert (
        f'users "kubernetes-admin" is forbidden: User "{ATTENDEE}" cannot impersonate resource "users" in API group '
        '"" at the cluster scope' in escalating.stderr
    )


def test_no_one_grants_more_than_they_hold(cluster: LocalCluster, attendee_token: str) -> None:
    binding = """
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: takeover, namespace: a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: jupyter}]
"""
    refused = cluster.kubectl("--token", attendee_token, "apply", "-f", "-", input=binding, check=False)
    assert refused.returncode == 1
    assert (
        'rolebindings.rbac.authorization.k8s.io "takeover" is forbidden: user "system:serviceaccount:a:jupyter" '
        '(groups=["system:serviceaccounts" "system:serviceaccounts:a" "system:authenticated"]) is attempting to grant '
        "RBAC permissions not currently held:" in refused.stderr
    )
    assert refused.stderr.endswith(
        '\n{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n{NonResourceURLs:["*"], Verbs:["*"]}\n'
    )


def test_kubectl_auth_can_i_and_whoami_answer_for_the_caller(cluster: LocalCluster, attendee_token: str) -> None:
    assert cluster.kubectl("auth", "can-i", "delete", "pods", "-n", "a", f"--as={ATTENDEE}").stdout.strip() == "yes"
    for refused in (("list", "secrets", "-n", "a"), ("list", "pods", "-n", "b")):
        answer = cluster.kubectl("auth", "can-i", *refused, f"--as={ATTENDEE}", check=False)
        assert (answer.returncode, answer.stdout.strip()) == (1, "no"), refused
    token = cluster.kubectl("create", "token", "jupyter", "-n", "a", "--duration=10m").stdout.strip()
    whoami = json.loads(as_attendee(cluster, token, "auth", "whoami", "-o", "json", check=True).stdout)
    assert whoami["status"]["userInfo"]["username"] == ATTENDEE
    listed = as_attendee(cluster, token, "auth", "can-i", "--list", "-n", "a", check=True).stdout
    assert "deployments.apps" in listed and "selfsubjectaccessreviews.authorization.k8s.io" in listed
    admin = json.loads(cluster.kubectl("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert admin == {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}


def test_the_review_apis_answer_for_the_caller(
    cluster: LocalCluster, api: client.ApiClient, attendee_token: str
) -> None:
    configuration = client.Configuration()
    configuration.host = api.configuration.host
    configuration.ssl_ca_cert = api.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {attendee_token}"}
    with client.ApiClient(configuration) as attendee:
        who = client.AuthenticationV1Api(attendee).create_self_subject_review({})
        assert who.status.user_info.username == ATTENDEE
        assert who.status.user_info.groups == [
            "system:serviceaccounts",
            "system:serviceaccounts:a",
            "system:authenticated",
        ]
        authorization = client.AuthorizationV1Api(attendee)
        review = {"spec": {"resourceAttributes": {"verb": "delete", "resource": "pods", "namespace": "a"}}}
        allowed = authorization.create_self_subject_access_review(review).status
        assert (
            allowed.allowed
            and allowed.reason
            == 'RBAC: allowed by RoleBinding "attendee/a" of Role "attendee" to ServiceAccount "jupyter/a"'
        )
        review["spec"]["resourceAttributes"]["namespace"] = "b"
        assert not authorization.create_self_subject_access_review(review).status.allowed
        rules = authorization.create_self_subject_rules_review({"spec": {"namespace": "a"}}).status
        assert any("deployments" in rule.resources for rule in rules.resource_rules)
        assert any("/api/*" in rule.non_resource_urls for rule in rules.non_resource_rules)
        with pytest.raises(client.ApiException) as refused:
            authorization.create_subject_access_review(
                {"spec": {"user": "x", "resourceAttributes": {"verb": "get", "resource": "pods"}}}
            )
        assert refused.value.status == 403
    admin = client.AuthorizationV1Api(api)
    subject = {
        "spec": {
            "user": ATTENDEE,
            "groups": ["system:serviceaccounts", "system:serviceaccounts:a"],
            "resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": "a"},
        }
    }
    assert admin.create_subject_access_review(subject).status.allowed is False


def test_a_token_dies_with_its_service_account(cluster: LocalCluster, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account("a", {"metadata": {"name": "short-lived"}})
    token = core.create_namespaced_service_account_token("short-lived", "a", {"spec": {}}).status.token
    known = as_attendee(cluster, token, "get", "pods", "-n", "a")  # authenticated, not authorized
    assert 'User "system:serviceaccount:a:short-lived" cannot list' in known.stderr
    core.delete_namespaced_service_account("short-lived", "a")
    gone = as_attendee(cluster, token, "get", "pods", "-n", "a")
    assert gone.returncode == 1 and "Unauthorized" in gone.stderr


POD = """
apiVersion: v1
kind: Pod
metadata: {name: NAME, namespace: a}
spec:
  serviceAccountName: jupyter
  restartPolicy: Never
  containers:
    - name: main
      image: ghcr.io/cloud-native-bookstore/workshop:latest
      command: [python, -c, SCRIPT]
"""

IN_CLUSTER = """
import json, labkit
from kubernetes.client import ApiException
with labkit.connect() as c:
    names = [p.metadata.name for p in c.core.list_namespaced_pod(c.namespace).items]
    try:
        c.core.list_namespaced_pod("b")
        other = 200
    except ApiException as exc:
        other = exc.status
    print(json.dumps({"source": c.source, "namespace": c.namespace, "names": names, "other": other}))
"""


def test_a_pod_gets_its_service_account_token_and_labkit_connects_in_cluster(cluster: LocalCluster) -> None:
    manifest = POD.replace("NAME", "in-cluster").replace("SCRIPT", json.dumps(IN_CLUSTER))
    apply(cluster, manifest)
    pod = yaml.safe_load(cluster.kubectl("get", "pod", "in-cluster", "-n", "a", "-o", "yaml").stdout)
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert [s for source in volume["projected"]["sources"] for s in source] == [
        "serviceAccountToken",
        "configMap",
        "downwardAPI",
    ]
    mount = {"name": volume["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert mount in pod["spec"]["containers"][0]["volumeMounts"]
    poll_until(
        lambda: cluster.kubectl("get", "pod", "in-cluster", "-n", "a", "-o", "jsonpath={.status.phase}").stdout,
        lambda phase: phase in ("Succeeded", "Failed"),
        "the in-cluster pod to finish",
        timeout=60,
    )
    logs = cluster.kubectl("logs", "in-cluster", "-n", "a").stdout
    seen = json.loads(logs.strip().splitlines()[-1])
    assert seen == {"source": "in-cluster", "namespace": "a", "names": ["in-cluster"], "other": 403}


def test_a_pod_that_opts_out_gets_no_token(cluster: LocalCluster) -> None:
    manifest = POD.replace("NAME", "no-token").replace("SCRIPT", json.dumps("print('hi')"))
    manifest = manifest.replace("  serviceAccountName: jupyter\n", "  automountServiceAccountToken: false\n")
    apply(cluster, manifest)
    pod = yaml.safe_load(cluster.kubectl("get", "pod", "no-token", "-n", "a", "-o", "yaml").stdout)
    assert not [v for v in pod["spec"].get("volumes", []) if v["name"].startswith("kube-api-access-")]
    missing = POD.replace("NAME", "ghost").replace("SCRIPT", '"pass"').replace("jupyter", "nobody")
    refused = apply(cluster, missing, check=False)
    assert 'error looking up service account a/nobody: serviceaccount "nobody" not found' in refused.stderr


def test_every_namespace_has_the_root_ca_bundle(cluster: LocalCluster) -> None:
    bundle = cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", "b", "-o", "json").stdout
    assert json.loads(bundle)["data"]["ca.crt"] == (cluster.home / "pki" / "ca.crt").read_text()


def test_lab_up_target_cluster_connects_labkit_to_a_real_api(cluster: LocalCluster, tmp_path) -> None:
    """Another LAB_HOME connects to this cluster as to any real one (it serves Knative's and Istio's CRDs)."""
    other = LocalCluster(tmp_path / "student-home")
    refused = other.lab(
        "up", "--target", "cluster", "--kubeconfig", str(cluster.kubeconfig), "--context", "nope", check=False
    )
    assert refused.returncode == 1 and "cannot use kubeconfig context nope" in refused.stderr
    connected = other.lab("up", "--target", "cluster", "--kubeconfig", str(cluster.kubeconfig))
    assert "Connected to context bookstore-local" in connected.stdout
    program = "import labkit; c = labkit.connect(); print(c.source, c.namespace, c.core.read_namespace(c.namespace).metadata.name)"  # noqa: E501
    seen = subprocess.run(
        [sys.executable, "-c", program], env=other.env, capture_output=True, text=True, timeout=60, check=True
    )
    assert seen.stdout.split() == ["kubeconfig", "bookstore", "bookstore"]
    assert "Disconnected from the real cluster" in other.lab("down").stdout
