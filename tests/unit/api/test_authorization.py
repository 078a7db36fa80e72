"""RBAC in-process: request attributes, rule matching and covering, the authorizer over a real store,
upstream's 403 wording, and the escalation check on roles and bindings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcluster.api.authentication import ADMIN, ANONYMOUS, UserInfo, current_user, service_account_groups
from localcluster.api.authorization import (
    Attributes,
    EscalationCheck,
    RBACAuthorizer,
    Rule,
    forbidden,
    request_attributes,
)
from localcluster.api.cluster import Cluster
from localcluster.api.errors import Forbidden
from localcluster.api.resources import ResourceRegistry
from localcluster.controllers.rbac import ClusterRoleAggregation

ATTENDEE = UserInfo("system:serviceaccount:a:jupyter", "uid-1", service_account_groups("a"))
RBAC = "rbac.authorization.k8s.io"


@pytest.fixture
def cluster(cluster: Cluster, registry: ResourceRegistry) -> Cluster:
    """The in-process cluster with the aggregated ClusterRoles and namespaces `a` and `b`."""
    ClusterRoleAggregation(cluster).reconcile([])
    for name in ("a", "b"):
        cluster.create(registry.get("", "namespaces"), "v1", "", {"metadata": {"name": name}})
    return cluster


@pytest.fixture
def authorizer(cluster: Cluster) -> RBACAuthorizer:
    return RBACAuthorizer(cluster.store)


def bind(cluster: Cluster, namespace: str, role: str, subject: dict, *, kind: str = "ClusterRole") -> None:
    cluster.create(
        cluster.registry.get(RBAC, "rolebindings"),
        "v1",
        namespace,
        {
            "metadata": {"name": f"{role}-binding"},
            "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role},
            "subjects": [subject],
        },
    )


def allowed(authorizer: RBACAuthorizer, user: UserInfo, method: str, path: str, query: bytes = b"") -> bool:
    return authorizer.authorize(request_attributes(user, method, path, query)).allowed


# -- request attributes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/a/pods", b"", ("list", "", "pods", "", "a", "")),
        ("GET", "/api/v1/namespaces/a/pods", b"watch=true", ("watch", "", "pods", "", "a", "")),
        ("GET", "/api/v1/watch/namespaces/a/pods", b"", ("watch", "", "pods", "", "a", "")),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            b"fieldSelector=metadata.name%3Dweb",
            ("list", "", "pods", "", "a", "web"),
        ),
        ("GET", "/api/v1/namespaces/a/pods/web/log", b"", ("get", "", "pods", "log", "a", "web")),
        (
            "POST",
            "/api/v1/namespaces/a/serviceaccounts/default/token",
            b"",
            ("create", "", "serviceaccounts", "token", "a", "default"),
        ),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/a/deployments",
            b"",
            ("deletecollection", "apps", "deployments", "", "a", ""),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/web/scale",
            b"",
            ("patch", "apps", "deployments", "scale", "a", "web"),
        ),
        ("GET", "/api/v1/namespaces/a", b"", ("get", "", "namespaces", "", "a", "a")),
        ("PUT", "/api/v1/namespaces/a/finalize", b"", ("update", "", "namespaces", "finalize", "a", "a")),
        ("GET", "/api/v1/nodes", b"", ("list", "", "nodes", "", "", "")),
    ],
)
def test_request_attributes_as_upstreams_request_info(method: str, path: str, query: bytes, expected: tuple) -> None:
    attributes = request_attributes(ATTENDEE, method, path, query)
    assert attributes.resource_request
    got = (attributes.verb, attributes.api_group, attributes.resource, attributes.subresource)
    assert (*got, attributes.namespace, attributes.name) == expected


@pytest.mark.parametrize("path", ["/api", "/api/v1", "/apis/apps/v1", "/version", "/openapi/v3/apis/apps/v1"])
def test_discovery_and_version_paths_are_non_resource_requests(path: str) -> None:
    attributes = request_attributes(ATTENDEE, "GET", path)
    assert not attributes.resource_request and attributes.verb == "get" and attributes.path == path


def test_a_websocket_upgrade_to_exec_asks_for_create() -> None:
    exec_path = "/api/v1/namespaces/a/pods/web/exec"
    assert request_attributes(ATTENDEE, "GET", exec_path, websocket=True).verb == "create"
    assert request_attributes(ATTENDEE, "GET", "/api/v1/namespaces/a/pods/web/log", websocket=True).verb == "get"


# -- rules -------------------------------------------------------------------------------------


def test_rule_matching_follows_rule_allows() -> None:
    pods = Attributes(ATTENDEE, "get", "", True, "a", "", "v1", "pods", "", "web")
    logs = Attributes(ATTENDEE, "get", "", True, "a", "", "v1", "pods", "log", "web")
    assert Rule(("get",), ("",), ("pods",)).allows(pods)
    assert not Rule(("get",), ("",), ("pods",)).allows(logs)  # a subresource is granted by name only
    assert Rule(("get",), ("",), ("*/log",)).allows(logs)
    assert Rule(("*",), ("*",), ("*",)).allows(logs)
    assert not Rule(("get",), ("apps",), ("pods",)).allows(pods)
    assert not Rule(("get",), ("",), ("pods",), ("other",)).allows(pods)
    assert Rule(("get",), non_resource_urls=("/apis/*",)).allows(Attributes(ATTENDEE, "get", "/apis/apps"))
    assert not Rule(("get",), non_resource_urls=("/api",)).allows(Attributes(ATTENDEE, "get", "/apis"))


def test_covers_breaks_rules_down_and_honours_wildcards() -> None:
    owned = [Rule(("get", "list"), ("",), ("pods", "*/log")), Rule(("*",), ("apps",), ("deployments",))]
    wanted = Rule(("get", "list", "delete"), ("",), ("pods", "pods/log"))
    missing = [simple for simple in wanted.breakdown() if not any(rule.covers(simple) for rule in owned)]
    assert missing == [Rule(("delete",), ("",), ("pods",)), Rule(("delete",), ("",), ("pods/log",))]
    assert Rule(("create",), ("apps",), ("deployments",)).compact_string() == (
        '{APIGroups:["apps"], Resources:["deployments"], Verbs:["create"]}'
    )


# -- the authorizer ----------------------------------------------------------------------------


def test_a_role_binding_grants_its_namespace_only(cluster: Cluster, authorizer: RBACAuthorizer) -> None:
    bind(cluster, "a", "view", {"kind": "ServiceAccount", "name": "jupyter"})
    assert allowed(authorizer, ATTENDEE, "GET", "/api/v1/namespaces/a/pods")
    assert allowed(authorizer, ATTENDEE, "GET", "/apis/serving.knative.dev/v1/namespaces/a/services")
    assert not allowed(authorizer, ATTENDEE, "GET", "/api/v1/namespaces/b/pods")
    assert not allowed(authorizer, ATTENDEE, "GET", "/api/v1/namespaces/a/secrets")  # view never reads Secrets
    assert not allowed(authorizer, ATTENDEE, "DELETE", "/api/v1/namespaces/a/pods/web")
    assert allowed(authorizer, ATTENDEE, "GET", "/api")  # system:discovery, through system:authenticated


def test_the_403_message_is_upstreams(authorizer: RBACAuthorizer) -> None:
    attributes = request_attributes(ATTENDEE, "GET", "/api/v1/namespaces/b/pods")
    error = forbidden(attributes, authorizer.authorize(attributes).reason)
    assert error.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods is forbidden: User "system:serviceaccount:a:jupyter" cannot list resource "pods" in API '
        'group "" in the namespace "b"',
        "reason": "Forbidden",
        "code": 403,
        "details": {"kind": "pods"},
    }
    named = forbidden(request_attributes(ANONYMOUS, "GET", "/apis/apps/v1/namespaces/b/deployments/web"))
    assert named.message.startswith('deployments.apps "web" is forbidden: User "system:anonymous" cannot get')
    assert forbidden(request_attributes(ANONYMOUS, "GET", "/api")).message == (
        'forbidden: User "system:anonymous" cannot get path "/api"'
    )


def test_a_binding_to_a_missing_role_is_the_reason(cluster: Cluster, authorizer: RBACAuthorizer) -> None:
    bind(cluster, "a", "ghost", {"kind": "ServiceAccount", "name": "jupyter"}, kind="Role")
    decision = authorizer.authorize(request_attributes(ATTENDEE, "GET", "/api/v1/namespaces/a/pods"))
    assert not decision.allowed
    assert decision.reason == 'RBAC: role.rbac.authorization.k8s.io "ghost" not found'


def test_the_cache_follows_rbac_changes(cluster: Cluster, authorizer: RBACAuthorizer) -> None:
    assert not allowed(authorizer, ATTENDEE, "GET", "/api/v1/namespaces/a/configmaps")
    bind(cluster, "a", "edit", {"kind": "Group", "name": "system:serviceaccounts:a"})
    assert allowed(authorizer, ATTENDEE, "GET", "/api/v1/namespaces/a/configmaps")
    cluster.delete(cluster.registry.get(RBAC, "rolebindings"), "a", "edit-binding")
    assert not allowed(authorizer, ATTENDEE, "GET", "/api/v1/namespaces/a/configmaps")


def test_system_masters_may_do_anything(authorizer: RBACAuthorizer) -> None:
    assert allowed(authorizer, ADMIN, "DELETE", "/api/v1/namespaces/kube-system")
    assert allowed(authorizer, ADMIN, "GET", "/anything/at/all")


def test_aggregated_roles_gather_the_labelled_ones(cluster: Cluster) -> None:
    edit = cluster.get(cluster.registry.get(RBAC, "clusterroles"), "", "edit")
    groups = {group for rule in edit["rules"] for group in rule.get("apiGroups", [])}
    assert {"", "apps", "serving.knative.dev"} <= groups
    admin = cluster.get(cluster.registry.get(RBAC, "clusterroles"), "", "admin")
    assert any("rolebindings" in rule.get("resources", []) for rule in admin["rules"])


# -- escalation --------------------------------------------------------------------------------


@pytest.fixture
def as_attendee(cluster: Cluster, authorizer: RBACAuthorizer) -> Iterator[None]:
    cluster.validating_admission.append(EscalationCheck(authorizer))
    bind(cluster, "a", "admin", {"kind": "ServiceAccount", "name": "jupyter"})
    token = current_user.set(ATTENDEE)
    yield
    current_user.reset(token)


@pytest.mark.usefixtures("as_attendee")
def test_no_one_grants_what_they_do_not_hold(cluster: Cluster) -> None:
    roles, bindings = cluster.registry.get(RBAC, "roles"), cluster.registry.get(RBAC, "rolebindings")
    # admin in "a" may hand out edit in "a" (it holds all of it there) ...
    bind(cluster, "a", "edit", {"kind": "User", "name": "friend"})
    # ... but not cluster-admin, nor a role with rights it lacks
    with pytest.raises(Forbidden) as error:
        bind(cluster, "a", "cluster-admin", {"kind": "User", "name": "friend"})
    assert error.value.message.startswith(
        'rolebindings.rbac.authorization.k8s.io "cluster-admin-binding" is forbidden: user '
        '"system:serviceaccount:a:jupyter" (groups=["system:serviceaccounts" "system:serviceaccounts:a" '
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
    )
    with pytest.raises(Forbidden, match=r'\{APIGroups:\[""\], Resources:\["resourcequotas"\], Verbs:\["delete"\]\}'):
        cluster.create(
            roles,
            "v1",
            "a",
            {
                "metadata": {"name": "quota-breaker"},
                "rules": [{"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["delete"]}],
            },
        )
    cluster.create(
        roles,
        "v1",
        "a",
        {"metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    )
    assert cluster.find(bindings, "a", "edit-binding") is not None
