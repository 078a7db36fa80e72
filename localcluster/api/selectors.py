"""Label and field selectors, with the apiserver's grammar and its 400 answers to bad ones."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from localcluster.api.errors import BadRequest

_LABEL_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_TOKEN = re.compile(r"\s*(!=|==|=|!|,|\(|\)|>|<|\bin\b|\bnotin\b|[^\s!=,()<>]+)")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # =, !=, in, notin, exists, !, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case "gt" | "lt":
                try:
                    number, bound = int(value or ""), int(self.values[0])
                except ValueError:
                    return False
                return number > bound if self.operator == "gt" else number < bound
        return False


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _check_key(key: str, text: str) -> str:
    if not _LABEL_KEY.match(key) or len(key.rpartition("/")[2]) > 63:
        raise BadRequest(f'unable to parse requirement: invalid label key "{key}" in selector "{text}"')
    return key


def _check_value(value: str, text: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise BadRequest(f'unable to parse requirement: invalid label value "{value}" in selector "{text}"')
    return value


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse `app=web,tier!=db,env in (a,b),!legacy,version` (the string grammar kubectl sends)."""
    if not text or not text.strip():
        return LabelSelector()
    tokens = _TOKEN.findall(text)
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise BadRequest(f'unable to parse label selector "{text}"')
    position = 0
    requirements = []

    def next_token() -> str | None:
        nonlocal position
        if position >= len(tokens):
            return None
        position += 1
        return tokens[position - 1]

    while True:
        token = next_token()
        if token is None:
            raise BadRequest(f'unable to parse label selector "{text}": found end of selector, expected a key')
        if token == "!":
            key = _check_key(next_token() or "", text)
            requirements.append(Requirement(key, "!"))
        else:
            key = _check_key(token, text)
            operator = tokens[position] if position < len(tokens) else ","
            if operator == ",":
                requirements.append(Requirement(key, "exists"))
            elif operator in ("=", "==", "!="):
                position += 1
                value = ""
                if position < len(tokens) and tokens[position] != ",":
                    value = next_token() or ""
                requirements.append(Requirement(key, "!=" if operator == "!=" else "=", (_check_value(value, text),)))
            elif operator in ("in", "notin"):
                position += 1
                if next_token() != "(":
                    raise BadRequest(f'unable to parse label selector "{text}": expected "(" after {operator}')
                values = []
                while (token := next_token()) not in (")", None):
                    if token != ",":
                        values.append(_check_value(token, text))
                if token is None:
                    raise BadRequest(f'unable to parse label selector "{text}": missing ")"')
                requirements.append(Requirement(key, operator, tuple(values)))
            elif operator in (">", "<"):
                position += 1
                bound = next_token() or ""
                if not bound.lstrip("-").isdigit():
                    raise BadRequest(f'unable to parse label selector "{text}": {bound!r} is not an integer')
                requirements.append(Requirement(key, "gt" if operator == ">" else "lt", (bound,)))
            else:
                raise BadRequest(f'unable to parse label selector "{text}": unexpected "{operator}"')
        separator = next_token()
        if separator is None:
            return LabelSelector(tuple(requirements))
        if separator != ",":
            raise BadRequest(f'unable to parse label selector "{text}": expected "," but found "{separator}"')


def selector_from_label_selector_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """The `metav1.LabelSelector` of a Deployment or Service-like object, as requirements."""
    if not selector:
        return LabelSelector()
    requirements = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or ():
        requirements.append(
            Requirement(expression["key"], operators[expression["operator"]], tuple(expression.get("values") or ()))
        )
    return LabelSelector(tuple(requirements))


# Field selectors: each kind supports metadata.name and metadata.namespace plus its own fields.
_FIELD_GETTERS: dict[str, Callable[[dict[str, Any]], Any]] = {}


def _path(dotted: str) -> Callable[[dict[str, Any]], Any]:
    parts = dotted.split(".")

    def get(obj: dict[str, Any]) -> Any:
        node: Any = obj
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        return node

    return get


_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
SUPPORTED_FIELDS: dict[str, tuple[str, ...]] = {
    "core/pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "core/events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "core/secrets": ("type",),
    "core/nodes": ("spec.unschedulable",),
    "core/namespaces": ("status.phase",),
    "core/persistentvolumeclaims": ("status.phase",),
    "apps/replicasets": ("status.replicas",),
}


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[tuple[str, str, str], ...] = ()  # (field, operator, value)

    def matches(self, obj: dict[str, Any]) -> bool:
        for field, operator, value in self.requirements:
            actual = _path(field)(obj)
            if field == "source" and isinstance(actual, dict):
                actual = actual.get("component")
            text = "" if actual is None else (str(actual).lower() if isinstance(actual, bool) else str(actual))
            if (text == value) != (operator == "="):
                return False
        return True


def parse_field_selector(text: str | None, resource_key: str) -> FieldSelector:
    """Parse `status.phase=Running,metadata.name!=web`; unsupported fields are a 400, as upstream."""
    if not text or not text.strip():
        return FieldSelector()
    supported = set(_COMMON_FIELDS) | set(SUPPORTED_FIELDS.get(resource_key, ()))
    requirements = []
    for term in text.split(","):
        match = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*([^,]*?)\s*", term)
        if not match:
            raise BadRequest(f"invalid selector: '{text}'; can't understand '{term}'")
        field, operator, value = match.groups()
        if field not in supported:
            raise BadRequest(f"field label not supported: {field}")
        requirements.append((field, "!=" if operator == "!=" else "=", value))
    return FieldSelector(tuple(requirements))
