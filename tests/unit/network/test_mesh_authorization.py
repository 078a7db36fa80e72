"""AuthorizationPolicy: which policies apply, CUSTOM then DENY then ALLOW, and mTLS identities."""

from __future__ import annotations

from typing import Any

from localcluster.network.mesh.authorization import (
    AuthzRequest,
    compile_policy,
    decide,
    principal_of,
)

STOREFRONT = principal_of("shop", "storefront")


def policy(spec: dict[str, Any], name: str = "p", namespace: str = "shop") -> Any:
    return compile_policy({"metadata": {"namespace": namespace, "name": name}, "spec": spec})


def request(
    principal: str | None = STOREFRONT,
    method: str = "POST",
    path: str = "/api/payments/1/refund",
    port: int = 8080,
    headers: dict[str, str] | None = None,
    source_ip: str = "127.1.0.5",
) -> AuthzRequest:
    return AuthzRequest(
        principal=principal,
        source_ip=source_ip,
        method=method,
        path=path,
        host="balance",
        port=port,
        headers=headers or {},
    )


def allowed(policies: list[Any], req: AuthzRequest) -> bool:
    return decide(policies, req).allowed


def test_no_policy_allows_and_an_empty_spec_allows_nothing() -> None:
    assert allowed([], request())
    allow_nothing = policy({})
    assert not allowed([allow_nothing], request())
    assert "allow-nothing" not in decide([allow_nothing], request()).reason
    assert allowed([policy({"rules": [{}]})], request())  # one empty rule matches everything


def test_allow_by_principal_only_for_the_storefront() -> None:
    only_storefront = policy({"action": "ALLOW", "rules": [{"from": [{"source": {"principals": [STOREFRONT]}}]}]})
    assert allowed([only_storefront], request())
    assert not allowed([only_storefront], request(principal_of("shop", "default")))
    assert not allowed([only_storefront], request(principal=None))  # no sidecar: plain text, no identity


def test_namespaces_need_an_identity_and_not_principals_match_plain_text() -> None:
    same_namespace = policy({"rules": [{"from": [{"source": {"namespaces": ["shop"]}}]}]})
    assert allowed([same_namespace], request(principal_of("shop", "anyone")))
    assert not allowed([same_namespace], request(principal_of("other", "anyone")))
    assert not allowed([same_namespace], request(principal=None))
    deny_strangers = policy({"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": [STOREFRONT]}}]}]})
    assert allowed([deny_strangers], request())
    assert not allowed([deny_strangers], request(principal=None))


def test_deny_wins_over_allow_and_custom_without_provider_denies_first() -> None:
    allow_all = policy({"rules": [{}]}, name="allow-all")
    deny_refunds = policy(
        {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["*/refund"]}}]}]}, name="deny-refunds"
    )
    decision = decide([allow_all, deny_refunds], request())
    assert not decision.allowed and decision.policy == "shop/deny-refunds"
    assert allowed([allow_all, deny_refunds], request(path="/api/payments"))
    custom = policy({"action": "CUSTOM", "provider": {"name": "ext"}, "rules": [{}]}, name="ext")
    assert decide([custom, deny_refunds, allow_all], request(path="/health")).policy == "shop/ext"


def test_operations_paths_methods_ports_and_their_negations() -> None:
    spec = {
        "rules": [
            {
                "to": [
                    {"operation": {"methods": ["GET"], "paths": ["/api/books*"]}},
                    {"operation": {"ports": ["9090"]}},
                    {"operation": {"notPaths": ["/api/*"], "notMethods": ["DELETE"]}},
                ]
            }
        ]
    }
    read_books = policy(spec)
    assert allowed([read_books], request(method="GET", path="/api/books/1"))
    assert not allowed([read_books], request(method="POST", path="/api/books"))
    assert allowed([read_books], request(method="POST", path="/api/books", port=9090))
    assert allowed([read_books], request(method="GET", path="/health"))
    assert not allowed([read_books], request(method="DELETE", path="/health"))


def test_when_on_headers_and_source_namespace() -> None:
    spec = {
        "rules": [
            {
                "when": [
                    {"key": "request.headers[X-Token]", "values": ["secret-*"]},
                    {"key": "source.namespace", "notValues": ["other"]},
                ]
            }
        ]
    }
    token = policy(spec)
    assert allowed([token], request(headers={"x-token": "secret-1"}))
    assert not allowed([token], request(headers={"x-token": "public"}))
    assert not allowed([token], request(principal_of("other", "x"), headers={"x-token": "secret-1"}))


def test_selectors_root_namespace_and_target_refs() -> None:
    selected = policy({"selector": {"matchLabels": {"app": "balance"}}})
    assert selected.applies_to("shop", {"app": "balance", "version": "v1"})
    assert not selected.applies_to("shop", {"app": "stock"})
    assert not selected.applies_to("other", {"app": "balance"})
    mesh_wide = policy({}, namespace="istio-system")
    assert mesh_wide.applies_to("anywhere", {"app": "x"})
    targeted = policy({"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "g"}]})
    assert not targeted.applies_to("shop", {})  # attaches to gateways and waypoints, never to a sidecar


def test_service_accounts_and_ip_blocks() -> None:
    by_account = policy({"rules": [{"from": [{"source": {"serviceAccounts": ["storefront", "ops/admin"]}}]}]})
    assert allowed([by_account], request())
    assert allowed([by_account], request(principal_of("ops", "admin")))
    assert not allowed([by_account], request(principal_of("ops", "storefront")))
    by_address = policy({"rules": [{"from": [{"source": {"ipBlocks": ["127.1.0.0/24"]}}]}]})
    assert allowed([by_address], request(source_ip="127.1.0.9"))
    assert not allowed([by_address], request(source_ip="127.2.0.9"))


def test_an_invalid_rule_is_skipped_as_pilot_skips_it() -> None:
    broken = policy({"rules": [{"to": [{"operation": {"ports": ["http"]}}]}]})
    assert broken.skipped and not broken.rules
    assert not allowed([broken], request())  # an ALLOW policy left without rules allows nothing
