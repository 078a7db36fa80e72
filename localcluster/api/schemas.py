"""Schemas of every served kind, from upstream sources only.

Built-in kinds: the Kubernetes v1.37 definitions shipped by the `kubernetes-validate` wheel (the
apiserver's own OpenAPI, as JSON Schema, with descriptions, `x-kubernetes-patch-merge-key`,
`x-kubernetes-list-map-keys` and GVK extensions). Custom kinds: the `openAPIV3Schema` of the official
CRDs in `shared/schemas/`. Validation, strategic merge patch, server-side apply and the OpenAPI
documents all read from this one index.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cached_property
from pathlib import Path
from typing import Any

from localcluster.api.resources import ResourceRegistry, ResourceType

KUBERNETES_SCHEMA_VERSION = "v1.37.0"
_REF_PREFIX = "#/$defs/"


def _definitions_path() -> Path:
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the kubernetes-validate package is not installed")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return package_dir / "kubernetes-json-schema" / f"{KUBERNETES_SCHEMA_VERSION}-local" / "_definitions.json"


class SchemaIndex:
    """Schemas by resource type and version, with `$ref` resolution for the built-in definitions."""

    def __init__(self, registry: ResourceRegistry) -> None:
        self.registry = registry

    @cached_property
    def definitions(self) -> dict[str, dict[str, Any]]:
        """Upstream definitions by name, e.g. `io.k8s.api.apps.v1.Deployment` (loaded on first use)."""
        with _definitions_path().open("rb") as stream:
            return json.load(stream)["$defs"]

    @cached_property
    def _definition_by_gvk(self) -> dict[tuple[str, str, str], str]:
        found = {}
        for name, definition in self.definitions.items():
            for gvk in definition.get("x-kubernetes-group-version-kind", ()):
                found[(gvk["group"], gvk["version"], gvk["kind"])] = name
        return found

    def definition_name(self, resource_type: ResourceType, version: str | None = None) -> str | None:
        """The upstream definition name of a built-in kind (None for custom kinds)."""
        if resource_type.is_custom:
            return None
        version = version or resource_type.storage_version
        return self._definition_by_gvk.get((resource_type.group, version, resource_type.kind))

    def for_type(self, resource_type: ResourceType, version: str | None = None) -> dict[str, Any]:
        """The object schema of a kind in a version (a CRD's openAPIV3Schema or an upstream definition)."""
        version = version or resource_type.storage_version
        if resource_type.crd_schemas is not None:
            return resource_type.crd_schemas[version]
        name = self.definition_name(resource_type, version)
        if name is None:
            raise KeyError(f"no upstream schema for {resource_type.api_version(version)} {resource_type.kind}")
        return self.definitions[name]

    def resolve(self, node: dict[str, Any] | None) -> dict[str, Any] | None:
        """Follow `$ref` (also when wrapped in allOf, as some generators emit) to the schema it names."""
        while node is not None:
            ref = node.get("$ref")
            if ref is None and len(node.get("allOf", ())) == 1:
                ref = node["allOf"][0].get("$ref")
            if ref is None:
                return node
            node = self.definitions.get(ref.removeprefix(_REF_PREFIX))
        return None

    def child(self, node: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
        """The resolved schema of property `key` of an object node (or of its map values)."""
        node = self.resolve(node)
        if node is None:
            return None
        properties = node.get("properties") or {}
        if key in properties:
            return self.resolve(properties[key])
        additional = node.get("additionalProperties")
        return self.resolve(additional) if isinstance(additional, dict) else None

    def items(self, node: dict[str, Any] | None) -> dict[str, Any] | None:
        """The resolved schema of the items of an array node."""
        node = self.resolve(node)
        if node is None:
            return None
        items = node.get("items")
        return self.resolve(items) if isinstance(items, dict) else None
