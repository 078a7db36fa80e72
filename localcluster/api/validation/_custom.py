"""Validation of custom resources (Knative, Istio) against their official CRD openAPIV3Schema.

The `spec` subtree is checked with `jsonschema` (Draft 4, the dialect OpenAPI 3.0 schemas extend):
`x-kubernetes-*` keys are annotations, `nullable: true` widens a node's type to null, formats are not
checked (as the apiserver checks few of them). `status` is left alone, as it is written by controllers
through /status.

CEL rules (`x-kubernetes-validations`): the Istio CRDs carry a handful of simple ones (a duration lower
bound, "at most one of", no wildcards in label matches). Those are evaluated by a Python equivalent
keyed by the exact rule text; any other rule is ignored, since localcluster has no CEL interpreter.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

# When rfc3987_syntax is installed (JupyterLab's jupyter-events brings it), `import jsonschema` builds
# its Lark grammar eagerly: 1.8 s of localcluster's start-up, only to check "iri" formats that CRD
# validation never checks. Keep it out of this process (a no-op if something imported it already).
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

import jsonschema
from jsonschema.exceptions import ValidationError

from localcluster.api.errors import Cause
from localcluster.api.validation import _fields
from localcluster.api.validation._structure import json_type

JsonObject = dict[str, Any]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(text: str) -> float | None:
    """Seconds in a Go duration string (`1h2m`, `1.5s`, `100ms`); None when it does not parse."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    parts = list(_DURATION_PART.finditer(body))
    if not parts or "".join(part.group(0) for part in parts) != body:
        return None
    return sign * sum(float(part.group(1)) * _DURATION_UNITS[part.group(2)] for part in parts)


def _at_most_one(*names: str) -> Callable[[Any], bool]:
    return lambda value: not isinstance(value, dict) or sum(name in value for name in names) <= 1


def _duration_at_least_1ms(value: Any) -> bool:
    seconds = go_duration_seconds(value) if isinstance(value, str) else None
    return seconds is not None and seconds >= 1e-3


#: Python equivalents of the CEL rules found in the official CRDs, by exact rule text.
KNOWN_CEL_RULES: dict[str, Callable[[Any], bool]] = {
    "duration(self) >= duration('1ms')": _duration_at_least_1ms,
    '!self.contains("*")': lambda value: not isinstance(value, str) or "*" not in value,
    'self.all(key, !key.contains("*"))': lambda value: not isinstance(value, dict) or all("*" not in k for k in value),
    "self.all(key, key.size() != 0)": lambda value: not isinstance(value, dict) or all(k != "" for k in value),
    "(has(self.credentialName) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1": _at_most_one(
        "credentialName", "credentialNames"
    ),
    "(has(self.credentialNames) ? 1 : 0) + (has(self.tlsCertificates) ? 1 : 0) <= 1": _at_most_one(
        "credentialNames", "tlsCertificates"
    ),
    "(has(self.tlsCertificates) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1": _at_most_one(
        "tlsCertificates", "credentialNames"
    ),
}


def _cel_keyword(
    validator: jsonschema.protocols.Validator, rules: list[JsonObject], instance: Any, schema: JsonObject
) -> Iterator[ValidationError]:
    for rule in rules:
        check = KNOWN_CEL_RULES.get(rule.get("rule", ""))
        if check is not None and not check(instance):
            error = ValidationError(rule.get("message") or f"failed rule: {rule['rule']}")
            error.validator = "x-kubernetes-validations"  # type: ignore[assignment]
            yield error


_CrdValidator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"x-kubernetes-validations": _cel_keyword})


def _openapi_to_json_schema(node: Any) -> Any:
    """A copy where `nullable: true` admits null, the one OpenAPI 3.0 keyword Draft 4 must be told about."""
    if isinstance(node, list):
        return [_openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _openapi_to_json_schema(value) for key, value in node.items()}
    if converted.get("nullable") is True and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    return converted


class SpecValidator:
    """The compiled validator of one CRD version's `spec` (built once, then reused for every request)."""

    def __init__(self, crd_schema: JsonObject) -> None:
        spec_schema = (crd_schema.get("properties") or {}).get("spec") or {}
        schema = _openapi_to_json_schema(copy.deepcopy(spec_schema))
        self._validator = _CrdValidator(schema)

    def causes(self, spec: Any) -> list[Cause]:
        errors = sorted(self._validator.iter_errors(spec), key=lambda error: list(map(str, error.absolute_path)))
        return [_cause(error) for error in errors]


def _path(parts: Any) -> str:
    path = "spec"
    for part in parts:
        path = _fields.index(path, part) if isinstance(part, int) else _fields.child(path, part)
    return path


def _cause(error: ValidationError) -> Cause:
    """Word a jsonschema error as the apiserver's OpenAPI validation words the same failure."""
    path = _path(error.absolute_path)
    value = error.instance
    kind = error.validator
    if kind == "required":
        missing = re.match(r"'([^']+)'", error.message)
        return _fields.required(_fields.child(path, missing.group(1)) if missing else path)
    if kind == "enum":
        return _fields.not_supported(path, value, [str(choice) for choice in error.validator_value])
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        given = json_type(value)
        return _fields.type_invalid(path, given, f"{path} in body must be of type {expected}: {_fields.render(given)}")
    if kind in ("maximum", "minimum"):
        relation = "less" if kind == "maximum" else "greater"
        return _fields.invalid(
            path, value, f"{path} in body should be {relation} than or equal to {error.validator_value}"
        )
    if kind == "pattern":
        return _fields.invalid(path, value, f"{path} in body should match '{error.validator_value}'")
    if kind == "maxLength":
        return Cause(path, f"Too long: may not be more than {error.validator_value} bytes", "FieldValueTooLong")
    if kind == "maxItems":
        return Cause(
            path, f"Too many: {len(value)}: must have at most {error.validator_value} items", "FieldValueTooMany"
        )
    if kind == "x-kubernetes-validations":
        return _fields.invalid(path, json_type(value), error.message)
    return _fields.invalid(path, value if isinstance(value, str | int | float) else json_type(value), error.message)
