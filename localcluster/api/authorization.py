"""RBAC, evaluated on every request as the apiserver's authorizer chain does.

    attributes = request_attributes(user, "GET", "/api/v1/namespaces/b/pods", b"")
    decision = authorizer.authorize(attributes)      # Decision(allowed=False, reason="")
    raise forbidden(attributes, decision.reason)     # 403: pods is forbidden: User "..." cannot list ...

Upstream's pieces, one function each: the RequestInfoFactory (`request_attributes`: the verb, API
group, resource, subresource, namespace and name a URL addresses, before any lookup, so a refused
request never learns whether the object exists), the privileged-group authorizer (`system:masters`
may do anything), the RBAC rule resolver (ClusterRoleBindings, then the RoleBindings of the
request's namespace; a binding to a missing role is a reason, not an error), `RuleAllows`, the
403 message of the handlers' `Forbidden`, and the escalation check of the RBAC registry (`Covers`):
a user may create a role or binding only granting what they hold, unless they may `escalate` or
`bind`. The rules a user holds are cached per (user, groups, namespace) and dropped whenever a
Role, ClusterRole or binding changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, unquote

from localcluster.api.authentication import UserInfo, current_user, split_service_account
from localcluster.api.errors import Forbidden
from localcluster.api.resources import ResourceType
from localcluster.store import Store

RBAC_GROUP = "rbac.authorization.k8s.io"
_ROLES, _CLUSTER_ROLES = f"{RBAC_GROUP}/roles", f"{RBAC_GROUP}/clusterroles"
_BINDINGS, _CLUSTER_BINDINGS = f"{RBAC_GROUP}/rolebindings", f"{RBAC_GROUP}/clusterrolebindings"
RBAC_KEYS = (_ROLES, _CLUSTER_ROLES, _BINDINGS, _CLUSTER_BINDINGS)

_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
#: Subresources a WebSocket upgrade writes to: upstream asks for `create` on them, not `get`
#: (AuthorizePodWebsocketUpgradeCreatePermission, on by default since Kubernetes 1.35).
_STREAMING_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as upstream's `authorizer.Attributes`."""

    user: UserInfo
    verb: str
    path: str = ""
    resource_request: bool = False
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_attributes(
    user: UserInfo, method: str, path: str, query_string: bytes = b"", *, websocket: bool = False
) -> Attributes:
    """The attributes of a request from its method and URL alone (upstream's RequestInfoFactory)."""
    stripped = path.strip("/")
    parts = stripped.split("/") if stripped else []
    if "%" in stripped:
        parts = [unquote(part) for part in parts]
    non_resource = Attributes(user, method.lower(), path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            return non_resource
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    subresource = parts[2] if len(parts) >= 3 and verb != "proxy" else ""
    name = parts[1] if len(parts) >= 2 else ""
    resource = parts[0]
    if not name and verb == "get":
        query = parse_qs(query_string.decode("latin-1"))
        verb = "watch" if _true(query.get("watch", [""])[-1]) else "list"
        name = _exact_name(query.get("fieldSelector", [""])[-1])
    if not name and verb == "delete":
        verb = "deletecollection"
    if websocket and subresource in _STREAMING_SUBRESOURCES and verb == "get":
        verb = "create"
    return Attributes(user, verb, path, True, namespace, group, version, resource, subresource, name)


def _exact_name(field_selector: str) -> str:
    """The name a list or watch asks for with `metadata.name=<name>` (upstream's `RequiresExactMatch`)."""
    for term in field_selector.split(","):
        key, operator, value = term.partition("==") if "==" in term else term.partition("=")
        if operator and not key.endswith("!") and key.strip() == "metadata.name":
            return value.strip()
    return ""


def _true(value: str) -> bool:
    return value in ("1", "t", "T", "true", "TRUE", "True")


# -- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A PolicyRule, with upstream's matching (`RuleAllows`) and covering (`ruleCovers`)."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: dict[str, Any]) -> Rule:
        def strings(key: str) -> tuple[str, ...]:
            value = rule.get(key) or ()
            return tuple(str(item) for item in value) if isinstance(value, list) else ()

        return cls(
            strings("verbs"),
            strings("apiGroups"),
            strings("resources"),
            strings("resourceNames"),
            strings("nonResourceURLs"),
        )

    def to_dict(self) -> dict[str, list[str]]:
        keys = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")
        values = (self.verbs, self.api_groups, self.resources, self.resource_names, self.non_resource_urls)
        return {key: list(value) for key, value in zip(keys, values, strict=True) if value}

    def allows(self, attributes: Attributes) -> bool:
        if "*" not in self.verbs and attributes.verb not in self.verbs:
            return False
        if not attributes.resource_request:
            return any(_url_covers(rule_url, attributes.path) for rule_url in self.non_resource_urls)
        if "*" not in self.api_groups and attributes.api_group not in self.api_groups:
            return False
        combined = attributes.resource
        if attributes.subresource:
            combined = f"{attributes.resource}/{attributes.subresource}"
        if not self._resource_matches(combined, attributes.subresource):
            return False
        return not self.resource_names or attributes.name in self.resource_names

    def _resource_matches(self, combined: str, subresource: str) -> bool:
        for resource in self.resources:
            if resource == "*" or resource == combined:
                return True
            if subresource and resource == f"*/{subresource}":
                return True
        return False

    def covers(self, simple: Rule) -> bool:
        """Whether this rule grants everything the (broken-down) rule `simple` does."""
        names_covered = (
            not self.resource_names
            if not simple.resource_names
            else not self.resource_names or set(simple.resource_names) <= set(self.resource_names)
        )
        return (
            ("*" in self.verbs or set(simple.verbs) <= set(self.verbs))
            and ("*" in self.api_groups or set(simple.api_groups) <= set(self.api_groups))
            and _resources_cover(self.resources, simple.resources)
            and all(any(_url_covers(own, url) for own in self.non_resource_urls) for url in simple.non_resource_urls)
            and names_covered
        )

    def breakdown(self) -> Iterator[Rule]:
        """One rule per group, resource, verb (and name); non-resource URLs combine with verbs only."""
        for group in self.api_groups:
            for resource in self.resources:
                for verb in self.verbs:
                    if self.resource_names:
                        for name in self.resource_names:
                            yield Rule((verb,), (group,), (resource,), (name,))
                    else:
                        yield Rule((verb,), (group,), (resource,))
        for url in self.non_resource_urls:
            for verb in self.verbs:
                yield Rule((verb,), non_resource_urls=(url,))

    def compact_string(self) -> str:
        """Upstream's `CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`."""
        fields = (
            ("APIGroups", self.api_groups),
            ("Resources", self.resources),
            ("NonResourceURLs", self.non_resource_urls),
            ("ResourceNames", self.resource_names),
            ("Verbs", self.verbs),
        )
        return "{" + ", ".join(f"{label}:{_go_quoted(values)}" for label, values in fields if values) + "}"


def _url_covers(owner: str, path: str) -> bool:
    return owner == "*" or owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def _resources_cover(owned: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    if "*" in owned:
        return True
    for resource in wanted:
        if resource in owned:
            continue
        if "/" not in resource or f"*/{resource.split('/', 1)[1]}" not in owned:
            return False
    return True


def _go_quoted(values: Iterable[str]) -> str:
    """Go's `%q` of a []string: `["a" "b"]`."""
    return "[" + " ".join(json.dumps(value) for value in values) + "]"


def rules_of(role: dict[str, Any]) -> list[Rule]:
    return [Rule.from_dict(rule) for rule in role.get("rules") or [] if isinstance(rule, dict)]


# -- the authorizer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass
class RuleSet:
    """The rules a user holds in a namespace, each with the binding that grants it, and resolution errors."""

    grants: list[tuple[str, Rule]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rules(self) -> list[Rule]:
        return [rule for _source, rule in self.grants]


class RBACAuthorizer:
    """`system:masters`, then RBAC over the objects in the store (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # One watch per RBAC kind: only their changes invalidate the cache, not every pod status write.
        self._changes = [store.watch(key, None, store.resource_version) for key in RBAC_KEYS]
        self._cache: dict[tuple[str, tuple[str, ...], str], RuleSet] = {}

    def authorize(self, attributes: Attributes) -> Decision:
        if attributes.user.privileged:
            return Decision(True)
        rule_set = self.rules_for(attributes.user, attributes.namespace)
        for source, rule in rule_set.grants:
            if rule.allows(attributes):
                return Decision(True, f"RBAC: allowed by {source}")
        return Decision(False, _rbac_reason(rule_set.errors))

    def rules_for(self, user: UserInfo, namespace: str) -> RuleSet:
        """What RBAC grants `user` in `namespace` ("" for cluster-wide), as upstream's `RulesFor`."""
        if any(not watch.queue.empty() for watch in self._changes):
            for watch in self._changes:
                while not watch.queue.empty():
                    watch.queue.get_nowait()
            self._cache.clear()
        key = (user.name, user.groups, namespace)
        rule_set = self._cache.get(key)
        if rule_set is None:
            rule_set = self._cache[key] = self._resolve(user, namespace)
        return rule_set

    def role_reference_rules(self, role_ref: dict[str, Any], namespace: str) -> list[Rule]:
        """The rules a binding's roleRef names; LookupError (in upstream's words) if the role is missing."""
        kind, name = role_ref.get("kind"), str(role_ref.get("name", ""))
        if kind == "ClusterRole":
            entry = self.store.get(_CLUSTER_ROLES, "", name)
            if entry is None:
                raise LookupError(f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
        elif kind == "Role":
            entry = self.store.get(_ROLES, namespace, name)
            if entry is None:
                raise LookupError(f'role.rbac.authorization.k8s.io "{name}" not found')
        else:
            raise LookupError(f"unsupported role reference kind: {kind!r}")
        return rules_of(entry.obj)

    def _resolve(self, user: UserInfo, namespace: str) -> RuleSet:
        rule_set = RuleSet()
        scopes = [(_CLUSTER_BINDINGS, "")]
        if namespace:
            scopes.append((_BINDINGS, namespace))
        for key, scope in scopes:
            for entry in self.store.list(key, scope or None)[0]:
                binding = entry.obj
                subject = _subject_for(user, binding.get("subjects") or [], scope)
                if subject is None:
                    continue
                role_ref = binding.get("roleRef") or {}
                try:
                    rules = self.role_reference_rules(role_ref, scope)
                except LookupError as exc:
                    rule_set.errors.append(str(exc))
                    continue
                source = _describe(binding, role_ref, subject, scope)
                rule_set.grants.extend((source, rule) for rule in rules)
        return rule_set

    def uncovered(self, user: UserInfo, namespace: str, wanted: Iterable[Rule]) -> list[Rule]:
        """The broken-down rules of `wanted` that `user` does not hold in `namespace` (upstream's `Covers`)."""
        owned = self.rules_for(user, namespace).rules
        return [simple for rule in wanted for simple in rule.breakdown() if not any(o.covers(simple) for o in owned)]


def _subject_for(user: UserInfo, subjects: list[Any], namespace: str) -> dict[str, Any] | None:
    """The first subject of a binding that is `user` (upstream's `appliesTo`)."""
    for subject in subjects:
        if not isinstance(subject, dict):
            continue
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User" and name == user.name:
            return subject
        if kind == "Group" and name in user.groups:
            return subject
        if kind == "ServiceAccount":
            account_namespace = subject.get("namespace") or namespace
            if account_namespace and split_service_account(user.name) == (account_namespace, name):
                return subject
    return None


def _describe(binding: dict[str, Any], role_ref: dict[str, Any], subject: dict[str, Any], namespace: str) -> str:
    """Upstream's binding describers, the source named in an `allowed by` reason."""
    metadata = binding["metadata"]
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "ServiceAccount":
        who = f'ServiceAccount "{name}/{subject.get("namespace") or namespace}"'
    else:
        who = f'{kind} "{name}"'
    role = f'{role_ref.get("kind")} "{role_ref.get("name")}"'
    if namespace:
        return f'RoleBinding "{metadata["name"]}/{namespace}" of {role} to {who}'
    return f'ClusterRoleBinding "{metadata["name"]}" of {role} to {who}'


def _rbac_reason(errors: list[str]) -> str:
    if not errors:
        return ""
    return "RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")


def forbidden(attributes: Attributes, reason: str = "") -> Forbidden:
    """The 403 the apiserver's handlers write, word for word."""
    user = attributes.user.name
    if not attributes.resource_request:
        message = f'User "{user}" cannot {attributes.verb} path "{attributes.path}"'
    else:
        resource = attributes.resource
        if attributes.subresource:
            resource = f"{resource}/{attributes.subresource}"
        where = f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope"
        group = attributes.api_group
        message = f'User "{user}" cannot {attributes.verb} resource "{resource}" in API group "{group}" {where}'
    if reason:
        message = f"{message}: {reason}"
    resource = attributes.resource if attributes.resource_request else ""
    return forbidden_for(resource, attributes.api_group, attributes.name, message)


def forbidden_for(resource: str, group: str, name: str, message: str) -> Forbidden:
    """Upstream's `NewForbidden(groupResource, name, err)`."""
    if not resource:
        return Forbidden(f"forbidden: {message}")
    qualified = f"{resource}.{group}" if group else resource
    prefix = f'{qualified} "{name}"' if name else qualified
    return Forbidden(f"{prefix} is forbidden: {message}", kind=resource, group=group or None, name=name or None)


# -- escalation ----------------------------------------------------------------------------------


class EscalationCheck:
    """The RBAC registry's admission: no one grants, through a role or a binding, what they do not hold.

    A validating admission step of the Cluster pipeline; it sees writes made through
    the API only (`current_user` is set), never the server's own.
    """

    def __init__(self, authorizer: RBACAuthorizer) -> None:
        self.authorizer = authorizer

    def __call__(self, resource_type: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        user = current_user.get()
        if user is None or user.privileged or resource_type.group != RBAC_GROUP:
            return
        metadata = obj.get("metadata") or {}
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        if resource_type.kind in ("Role", "ClusterRole"):
            self._check_role(user, resource_type, obj, old, namespace, name)
        elif resource_type.kind in ("RoleBinding", "ClusterRoleBinding"):
            self._check_binding(user, resource_type, obj, namespace, name)

    def _may(self, user: UserInfo, verb: str, resource: str, namespace: str, name: str) -> bool:
        attributes = Attributes(user, verb, "", True, namespace, RBAC_GROUP, "v1", resource, "", name)
        return self.authorizer.authorize(attributes).allowed

    def _check_role(
        self,
        user: UserInfo,
        resource_type: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        namespace: str,
        name: str,
    ) -> None:
        if self._may(user, "escalate", resource_type.plural, namespace, name):
            return
        aggregation = obj.get("aggregationRule")
        if aggregation and (old is None or old.get("aggregationRule") != aggregation):
            raise forbidden_for(
                resource_type.plural, RBAC_GROUP, name, "must have cluster-admin privileges to use the aggregationRule"
            )
        self._confirm(user, resource_type, namespace, name, rules_of(obj))

    def _check_binding(
        self, user: UserInfo, resource_type: ResourceType, obj: dict[str, Any], namespace: str, name: str
    ) -> None:
        role_ref = obj.get("roleRef") or {}
        ref_resource = "clusterroles" if role_ref.get("kind") == "ClusterRole" else "roles"
        if self._may(user, "bind", ref_resource, namespace, str(role_ref.get("name", ""))):
            return
        try:
            rules = self.authorizer.role_reference_rules(role_ref, namespace)
        except LookupError as exc:
            raise forbidden_for(resource_type.plural, RBAC_GROUP, name, str(exc)) from None
        self._confirm(user, resource_type, namespace, name, rules)

    def _confirm(
        self, user: UserInfo, resource_type: ResourceType, namespace: str, name: str, rules: list[Rule]
    ) -> None:
        missing = self.authorizer.uncovered(user, namespace, rules)
        if not missing:
            return
        lines = sorted({rule.compact_string() for rule in _compact(missing)})
        message = (
            f'user "{user.name}" (groups={_go_quoted(user.groups)}) is attempting to grant RBAC permissions not '
            "currently held:\n" + "\n".join(lines)
        )
        errors = self.authorizer.rules_for(user, namespace).errors
        if errors:
            message += f"; resolution errors: [{' '.join(errors)}]"
        raise forbidden_for(resource_type.plural, RBAC_GROUP, name, message)


def _compact(rules: list[Rule]) -> list[Rule]:
    """Upstream's `CompactRules`: simple rules on one resource (and name) merge their verbs."""
    merged: dict[tuple[str, str, str], Rule] = {}
    others: list[Rule] = []
    for rule in rules:
        simple = (
            len(rule.api_groups) == 1
            and len(rule.resources) == 1
            and len(rule.resource_names) <= 1
            and not rule.non_resource_urls
        )
        if not simple:
            others.append(rule)
            continue
        key = (rule.api_groups[0], rule.resources[0], rule.resource_names[0] if rule.resource_names else "")
        existing = merged.get(key)
        merged[key] = rule if existing is None else replace(existing, verbs=existing.verbs + rule.verbs)
    return others + list(merged.values())
