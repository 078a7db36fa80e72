"""The decoding half of validation: unknown fields pruned and reported, wrong types reported.

One walk over the object, led by its schema (an upstream definition with `$ref`s or a CRD's structural
openAPIV3Schema), does what the apiserver's strict decoder and structural pruning do: a field the
schema does not know is removed (kept under `x-kubernetes-preserve-unknown-fields` and inside maps) and
its path recorded; a value of the wrong JSON type becomes a cause with its path. Nulls are kept where the
schema allows them and otherwise dropped, as the CRD pruning of non-nullable nulls does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localcluster.api.errors import Cause
from localcluster.api.schemas import SchemaIndex
from localcluster.api.validation import _fields

JsonObject = dict[str, Any]

_EMBEDDED_KEYS = frozenset({"apiVersion", "kind", "metadata"})
#: Some CRDs (Istio's) declare only `spec` and `status`; the apiserver knows these on every object.
_ROOT_PROPERTIES: JsonObject = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value, as OpenAPI names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass
class StructureReport:
    """What the walk found: pruned unknown fields, type errors (which stop validation), missing fields."""

    unknown_fields: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    missing: list[Cause] = field(default_factory=list)


@dataclass
class StructureWalker:
    """Walks one object against its schema.

    `metadata_schema` stands in for a CRD's opaque `metadata`; `check_required` reports the schema's
    `required` properties (built-ins; CRD specs get theirs from jsonschema). `status` is never checked for
    required fields: controllers write it whole.
    """

    index: SchemaIndex
    metadata_schema: JsonObject | None
    check_required: bool = False
    report: StructureReport = field(default_factory=StructureReport)

    def walk_root(self, schema: JsonObject, obj: JsonObject) -> StructureReport:
        """Walk a whole object; `apiVersion`, `kind` and `metadata` are known at the root of every kind."""
        node = self.index.resolve(schema) or {}
        properties = {**_ROOT_PROPERTIES, **node.get("properties", {})}
        if self.metadata_schema is not None:
            properties["metadata"] = self.metadata_schema
        self._walk({**node, "properties": properties}, obj, "")
        return self.report

    def _walk(self, schema: JsonObject | None, value: Any, path: str) -> None:
        node = self.index.resolve(schema)
        if node is None:
            return
        allowed = _allowed_types(node)
        if allowed and json_type(value) not in allowed and not _integral_number(value, allowed):
            expected = " or ".join(sorted(allowed - {"null"}))
            where = path or "body"
            self.report.causes.append(
                _fields.type_invalid(
                    path,
                    json_type(value),
                    f"{where} in body must be of type {expected}: {_fields.render(json_type(value))}",
                )
            )
            return
        if isinstance(value, dict):
            self._walk_object(node, value, path)
        elif isinstance(value, list):
            items = node.get("items")
            if isinstance(items, dict):
                for position, item in enumerate(value):
                    self._walk(items, item, _fields.index(path, position))

    def _walk_object(self, node: JsonObject, value: JsonObject, path: str) -> None:
        properties: JsonObject = node.get("properties") or {}
        additional = node.get("additionalProperties")
        preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        free_form = not properties and additional is None
        embedded = node.get("x-kubernetes-embedded-resource") is True
        if self.check_required and path != "status" and not path.startswith("status."):
            for name in node.get("required", ()):
                if value.get(name) is None:
                    self.report.missing.append(_fields.required(_fields.child(path, name)))
        for key in list(value):
            child = value[key]
            property_schema = properties.get(key)
            if property_schema is not None:
                child_path = _fields.child(path, key)
                if child is None and not _nullable(self.index.resolve(property_schema)):
                    del value[key]
                    continue
                self._walk(property_schema, child, child_path)
            elif isinstance(additional, dict):
                self._walk(additional, child, _fields.key(path, key))
            elif not (preserve or free_form or additional is True or (embedded and key in _EMBEDDED_KEYS)):
                self.report.unknown_fields.append(_fields.child(path, key))
                del value[key]


def _allowed_types(node: JsonObject) -> frozenset[str]:
    """The JSON types a node accepts; empty when it accepts anything."""
    declared = node.get("type")
    if isinstance(declared, str):
        types = {declared}
    elif isinstance(declared, list):
        types = set(declared)
    elif node.get("x-kubernetes-int-or-string") is True:
        types = {"integer", "string"}
    elif node.get("oneOf") and all(set(member) == {"type"} for member in node["oneOf"]):
        types = set()
        for member in node["oneOf"]:
            member_type = member["type"]
            types.update([member_type] if isinstance(member_type, str) else member_type)
    else:
        return frozenset()
    if node.get("x-kubernetes-int-or-string") is True:
        types |= {"integer", "string"}
    if node.get("nullable") is True:
        types.add("null")
    return frozenset(types)


def _nullable(node: JsonObject | None) -> bool:
    if node is None:
        return True
    declared = node.get("type")
    return node.get("nullable") is True or declared is None or (isinstance(declared, list) and "null" in declared)


def _integral_number(value: Any, allowed: frozenset[str]) -> bool:
    """An integer where a number is asked for is fine (JSON has one number type)."""
    return "number" in allowed and json_type(value) == "integer"
