"""AuthorizationPolicy as the destination's sidecar enforces it (Envoy's RBAC filters, built by pilot).

Which policies apply to a workload: those in the root namespace (istio-system) and in the workload's
own namespace whose `selector` matches its pod labels (no selector: every workload there). A policy
with `targetRef(s)` attaches to gateways and waypoints only, so a sidecar ignores it, as upstream.

How they decide, in Istio's order: CUSTOM, then DENY, then ALLOW. localcluster has no external
authorizer, so a CUSTOM policy is what pilot makes of one whose provider it cannot find: its rules
deny. A DENY rule that matches denies. If any ALLOW policy applies, a request must match one of
their rules (so `spec: {}`, an ALLOW without rules, allows nothing); with none, everything is allowed.

The caller's identity is mTLS's: `cluster.local/ns/<ns>/sa/<serviceaccount>` of a calling pod that
has a sidecar (or of the ingress gateway). A caller without a sidecar speaks plain text (PERMISSIVE
mode), so it has no principal and no namespace: rules on them never match it, their `not` forms do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from localcluster.network.mesh.matching import InvalidMatch, StringMatcher, compile_re2, wildcard_match

#: Istio's default root namespace: its policies apply to every workload of the mesh.
ROOT_NAMESPACE = "istio-system"
TRUST_DOMAIN = "cluster.local"
#: Envoy's RBAC answer, exactly (403, text/plain).
DENIED_BODY = "RBAC: access denied"
SPIFFE = "spiffe://"
_EMPTY: Mapping[str, str] = MappingProxyType({})


def principal_of(namespace: str, service_account: str) -> str:
    """The mTLS identity of a pod's ServiceAccount, as AuthorizationPolicy's `principals` write it."""
    return f"{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class AuthzRequest:
    """What the destination's sidecar knows of one request."""

    #: The caller's mTLS principal (no `spiffe://`), None for a plain-text caller (no sidecar).
    principal: str | None
    source_ip: str
    method: str
    #: The path without its query string (Envoy's RBAC path matcher).
    path: str
    host: str
    #: The port the workload receives on (the container port, not the Service's).
    port: int
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    destination_ip: str = ""

    @property
    def spiffe(self) -> str | None:
        return SPIFFE + self.principal if self.principal else None


Predicate = Callable[[AuthzRequest], bool]


def _any_of(matchers: Sequence[StringMatcher], value: Callable[[AuthzRequest], str | None]) -> Predicate:
    return lambda request: any(matcher(value(request)) for matcher in matchers)


def _negated(predicate: Predicate) -> Predicate:
    return lambda request: not predicate(request)


def _networks(values: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(value, strict=False) for value in values]
    except ValueError as exc:
        raise InvalidMatch(f"not an IP address or CIDR block: {exc}") from None


def _in_networks(values: Iterable[str], address: Callable[[AuthzRequest], str]) -> Predicate:
    networks = _networks(values)

    def check(request: AuthzRequest) -> bool:
        try:
            ip = ipaddress.ip_address(address(request))
        except ValueError:
            return False
        return any(ip in network for network in networks)

    return check


def _namespace_matchers(values: Iterable[str]) -> list[StringMatcher]:
    """pilot's srcNamespaceGenerator: `.*/ns/<ns with * as .*>/.*` against the principal."""
    matchers = []
    for value in values:
        literal = ".*".join(_re_escape(part) for part in value.split("*"))
        pattern = f".*/ns/{literal}/.*"
        matchers.append(StringMatcher("regex", pattern, pattern=compile_re2(pattern)))
    return matchers


def _service_account_matchers(values: Iterable[str], policy_namespace: str) -> list[StringMatcher]:
    """pilot's serviceAccountRegex: `sa` in the policy's namespace, or `ns/sa`."""
    matchers = []
    for value in values:
        namespace, _, account = value.partition("/") if "/" in value else (policy_namespace, "", value)
        pattern = f"spiffe://.+/ns/{_re_escape(namespace)}/(.+/|)sa/{_re_escape(account)}(/.+)?"
        matchers.append(StringMatcher("regex", pattern, pattern=compile_re2(pattern)))
    return matchers


def _re_escape(text: str) -> str:
    return "".join("\\" + char if not (char.isalnum() or char in "-_") else char for char in text)


def _trust_domain_matchers(values: Iterable[str]) -> list[StringMatcher]:
    matchers = []
    for value in values:
        if value == "*":
            matchers.append(StringMatcher("prefix", SPIFFE))
        elif "*" not in value:
            matchers.append(StringMatcher("prefix", f"{SPIFFE}{value}/"))
        else:
            head, _, tail = value.partition("*")
            pattern = f"spiffe://{_re_escape(head)}[^/]*{_re_escape(tail)}/.*"
            matchers.append(StringMatcher("regex", pattern, pattern=compile_re2(pattern)))
    return matchers


def _header_value(name: str) -> Callable[[AuthzRequest], str | None]:
    return lambda request: request.headers.get(name)


def _ports(values: Iterable[str]) -> frozenset[int]:
    try:
        return frozenset(int(value) for value in values)
    except ValueError:
        raise InvalidMatch(f"ports must be numbers, got {list(values)}") from None


def _no_jwt(_: AuthzRequest) -> bool:
    """Request principals, audiences, presenters and claims come from a JWT, which nothing here validates."""
    return False


#: Source fields: (field, builder of a predicate from the values and the policy namespace).
_SOURCE_FIELDS: dict[str, Callable[[list[str], str], Predicate]] = {
    "principals": lambda values, _: _any_of([wildcard_match(v, prefix=SPIFFE) for v in values], lambda r: r.spiffe),
    "namespaces": lambda values, _: _any_of(_namespace_matchers(values), lambda r: r.spiffe),
    "serviceAccounts": lambda values, ns: _any_of(_service_account_matchers(values, ns), lambda r: r.spiffe),
    "trustDomains": lambda values, _: _any_of(_trust_domain_matchers(values), lambda r: r.spiffe),
    "ipBlocks": lambda values, _: _in_networks(values, lambda r: r.source_ip),
    "remoteIpBlocks": lambda values, _: _in_networks(values, lambda r: r.source_ip),
    "requestPrincipals": lambda values, _: _no_jwt,
}

_OPERATION_FIELDS: dict[str, Callable[[list[str]], Predicate]] = {
    "hosts": lambda values: _any_of([wildcard_match(v, ignore_case=True) for v in values], lambda r: r.host),
    "methods": lambda values: _any_of([wildcard_match(v) for v in values], lambda r: r.method),
    "paths": lambda values: _any_of([wildcard_match(v) for v in values], lambda r: r.path),
    "ports": lambda values: (lambda ports: lambda r: r.port in ports)(_ports(values)),
}


def _condition(key: str, values: list[str], policy_namespace: str) -> Predicate:
    """One `when` key (Istio's attribute names) with its values."""
    if key.startswith("request.headers[") and key.endswith("]"):
        name = key[len("request.headers[") : -1].lower()
        return _any_of([wildcard_match(v) for v in values], _header_value(name))
    if key in ("source.ip", "remote.ip"):
        return _in_networks(values, lambda r: r.source_ip)
    if key == "destination.ip":
        return _in_networks(values, lambda r: r.destination_ip)
    if key == "destination.port":
        ports = _ports(values)
        return lambda r: r.port in ports
    if key == "source.namespace":
        return _SOURCE_FIELDS["namespaces"](values, policy_namespace)
    if key == "source.principal":
        return _SOURCE_FIELDS["principals"](values, policy_namespace)
    if key == "source.serviceAccount":
        return _SOURCE_FIELDS["serviceAccounts"](values, policy_namespace)
    if key.startswith("request.auth."):
        return _no_jwt
    if key == "connection.sni":
        return lambda _: False  # plain HTTP inside localcluster: there is no TLS server name
    raise InvalidMatch(f"unknown attribute {key!r} in `when`")


def _fields_predicate(spec: Mapping[str, Any], build: Callable[[str, list[str]], Predicate | None]) -> Predicate:
    """AND over the fields present (each an OR over its values, `not` fields negated)."""
    parts: list[Predicate] = []
    for name, values in spec.items():
        if not values:
            continue
        negate = name.startswith("not") and name[3:4].isupper()
        field_name = name[3].lower() + name[4:] if negate else name
        predicate = build(field_name, list(values))
        if predicate is None:
            continue
        parts.append(_negated(predicate) if negate else predicate)
    return lambda request: all(part(request) for part in parts)


def compile_rule(rule: Mapping[str, Any], policy_namespace: str) -> Predicate:
    """One rule: any `from` AND any `to` AND every `when` (absent parts match everything)."""
    sources = [
        _fields_predicate(
            entry.get("source") or {},
            lambda name, values: _SOURCE_FIELDS[name](values, policy_namespace) if name in _SOURCE_FIELDS else None,
        )
        for entry in rule.get("from") or []
    ]
    operations = [
        _fields_predicate(
            entry.get("operation") or {},
            lambda name, values: _OPERATION_FIELDS[name](values) if name in _OPERATION_FIELDS else None,
        )
        for entry in rule.get("to") or []
    ]
    conditions: list[Predicate] = []
    for condition in rule.get("when") or []:
        key = condition.get("key", "")
        if condition.get("values"):
            conditions.append(_condition(key, list(condition["values"]), policy_namespace))
        if condition.get("notValues"):
            conditions.append(_negated(_condition(key, list(condition["notValues"]), policy_namespace)))

    def matches(request: AuthzRequest) -> bool:
        if sources and not any(source(request) for source in sources):
            return False
        if operations and not any(operation(request) for operation in operations):
            return False
        return all(condition(request) for condition in conditions)

    return matches


@dataclass(frozen=True)
class CompiledPolicy:
    namespace: str
    name: str
    action: str
    selector: Mapping[str, str] | None
    #: Policies with targetRef(s) attach to gateways and waypoints only: sidecars skip them.
    targeted: bool
    rules: tuple[Predicate, ...]
    #: Why a rule was skipped, as pilot logs it ("skipped invalid rule ...").
    skipped: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def applies_to(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if self.targeted:
            return False
        if self.namespace not in (namespace, ROOT_NAMESPACE):
            return False
        return self.selector is None or all(labels.get(k) == v for k, v in self.selector.items())

    def matches(self, request: AuthzRequest) -> bool:
        return any(rule(request) for rule in self.rules)


def compile_policy(obj: Mapping[str, Any]) -> CompiledPolicy:
    metadata = obj["metadata"]
    spec = obj.get("spec") or {}
    rules: list[Predicate] = []
    skipped: list[str] = []
    for index, rule in enumerate(spec.get("rules") or []):
        try:
            rules.append(compile_rule(rule, metadata["namespace"]))
        except InvalidMatch as exc:
            skipped.append(f"rules[{index}]: {exc}")
    selector = spec.get("selector")
    return CompiledPolicy(
        namespace=metadata["namespace"],
        name=metadata["name"],
        action=spec.get("action") or "ALLOW",
        selector=MappingProxyType(dict(selector.get("matchLabels") or {})) if selector is not None else None,
        targeted=bool(spec.get("targetRef") or spec.get("targetRefs")),
        rules=tuple(rules),
        skipped=tuple(skipped),
    )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: `ns/name` of the policy that decided, "" when no policy did (allowed by default).
    policy: str = ""
    reason: str = ""


def decide(policies: Iterable[CompiledPolicy], request: AuthzRequest) -> Decision:
    """CUSTOM (here: deny), then DENY, then ALLOW, over the policies that apply to the workload."""
    by_action: dict[str, list[CompiledPolicy]] = {"CUSTOM": [], "DENY": [], "ALLOW": []}
    for policy in policies:
        by_action.setdefault(policy.action, []).append(policy)
    for action in ("CUSTOM", "DENY"):
        for policy in by_action[action]:
            if policy.matches(request):
                why = "CUSTOM policy without an authorization provider" if action == "CUSTOM" else "DENY policy"
                return Decision(False, policy.key, f"matched {why} {policy.key}")
    allow = by_action["ALLOW"]
    if not allow:
        return Decision(True)
    for policy in allow:
        if policy.matches(request):
            return Decision(True, policy.key, f"matched ALLOW policy {policy.key}")
    names = ", ".join(policy.key for policy in allow)
    return Decision(False, "", f"no rule of the ALLOW policies ({names}) matched")
