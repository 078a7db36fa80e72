"""The OpenAPI documents kubectl reads: `/openapi/v3`, `/openapi/v3/<group-version>` and `/openapi/v2`.

Every document is generated from the `SchemaIndex` (upstream definitions of built-in kinds, CRD schemas
of custom kinds) and the `ResourceRegistry` (which paths exist), never copied from a cluster. What kubectl
1.37 relies on, read from its source:

- `kubectl explain` fetches the v3 root, then the group-version document as JSON, finds the kind through
  `x-kubernetes-group-version-kind` on the operations of the resource's paths and on a component schema.
- client-side `kubectl apply` builds its strategic merge patch from the v3 document when the PATCH
  operation of the kind accepts `application/strategic-merge-patch+json` (built-ins; CRDs get a JSON
  merge patch), reading `x-kubernetes-patch-merge-key` and `-patch-strategy` from the component schemas.
- `--validate=strict` (the default) looks for a `fieldValidation` query parameter on the kind's PATCH
  operation in v3; when it is there the server validates. For a kind v3 does not list (a typo, a CRD
  not installed) and for `kind: List` files kubectl validates itself, with OpenAPI v2 read as
  protobuf only (gnostic's openapi_v2.Document, see protobuf/_openapi.py).

Group-version documents are served as JSON; `/openapi/v2` as JSON or as that protobuf, whichever the
Accept header prefers. v3 protobuf is answered with JSON whenever the Accept header also admits JSON,
and with 406 and a `Status` when it admits only protobuf. The root and the documents
carry the upstream caching scheme: `?hash=<etag>` URLs, `ETag`, `Cache-Control: public, immutable` on a
matching hash, a 301 to the current hash on a stale one, and 304 on `If-None-Match`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from localcluster.api.errors import ApiError, NotFound
from localcluster.api.protobuf import encode_openapi_v2
from localcluster.api.resources import ResourceType
from localcluster.api.schemas import KUBERNETES_SCHEMA_VERSION, SchemaIndex

__all__ = ["OpenAPIDocuments", "openapi_routes"]

JsonObject = dict[str, Any]

_DEFS_REF = "#/$defs/"
_V3_REF = "#/components/schemas/"
_V2_REF = "#/definitions/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_OBJECT_META = f"{_META}.ObjectMeta"
_LIST_META = f"{_META}.ListMeta"
_STATUS = f"{_META}.Status"
_DELETE_OPTIONS = f"{_META}.DeleteOptions"
_PATCH = f"{_META}.Patch"
_WATCH_EVENT = f"{_META}.WatchEvent"
_SCALE = "io.k8s.api.autoscaling.v1.Scale"
_TOKEN_REQUEST = "io.k8s.api.authentication.v1.TokenRequest"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_JSON = "application/json"
_ONE_YEAR_SECONDS = 365 * 24 * 3600
#: How both documents (v2 securityDefinitions, v3 securitySchemes) describe the API's one credential.
_BEARER_TOKEN_SCHEME = {
    "BearerToken": {
        "description": "Bearer Token authentication",
        "in": "header",
        "name": "authorization",
        "type": "apiKey",
    }
}
_YAML = "application/yaml"
_PROTOBUF = "application/vnd.kubernetes.protobuf"
_STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json")
#: kubectl asks for the first (its original, with an `@` Go's mime package rejects); upstream answers the second.
_PROTOBUF_OPENAPI_V2 = (
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
)
_PROTOBUF_OPENAPI = ("com.github.proto-openapi.spec.v3@v1.0+protobuf", "com.github.proto-openapi.spec.v3.v1.0+protobuf")


def _query(name: str, description: str, schema_type: str = "string") -> JsonObject:
    return {
        "description": description,
        "in": "query",
        "name": name,
        "schema": {"type": schema_type, "uniqueItems": True},
    }


def _path_parameter(name: str, description: str) -> JsonObject:
    return {
        "description": description,
        "in": "path",
        "name": name,
        "required": True,
        "schema": {"type": "string", "uniqueItems": True},
    }


_PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
_NAMESPACE = _path_parameter("namespace", "object name and auth scope, such as for teams and projects")
_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted.")
_FIELD_MANAGER = _query(
    "fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."
)
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing "
    "unknown or duplicate fields. Valid values are: Ignore, Warn, Strict (the default).",
)
_FORCE = _query("force", 'Force is going to "force" Apply requests.', "boolean")
_LIST_PARAMETERS = [
    _query("allowWatchBookmarks", 'allowWatchBookmarks requests watch events with type "BOOKMARK".', "boolean"),
    _query("continue", "The continue option should be set when retrieving more results from the server."),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _query("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _query("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
    _query(
        "resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from."
    ),
    _query("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources and return them as a stream.", "boolean"),
]
_DELETE_PARAMETERS = [
    _DRY_RUN,
    _query("gracePeriodSeconds", "The duration in seconds before the object should be deleted.", "integer"),
    _query("orphanDependents", "Deprecated: please use the PropagationPolicy.", "boolean"),
    _query(
        "propagationPolicy", "Whether and how garbage collection will be performed: Orphan, Background or Foreground."
    ),
]


def _ref(name: str) -> JsonObject:
    return {"$ref": _V3_REF + name}


def _content(schema: JsonObject, media_types: tuple[str, ...]) -> JsonObject:
    return {media_type: {"schema": schema} for media_type in media_types}


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", ".").split(".") if part)


def _group_words(group: str) -> str:
    """`apps` → `Apps`, `rbac.authorization.k8s.io` → `RbacAuthorization`, core → `Core` (as operationIds)."""
    return _camel(group.removesuffix(".k8s.io")) if group else "Core"


def crd_definition_name(group: str, version: str, kind: str) -> str:
    """How the apiserver names a CRD's schema: the group reversed, `dev.knative.serving.v1.Service`."""
    return ".".join([*reversed(group.split(".")), version, kind])


def group_version_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@dataclass(frozen=True)
class _Kind:
    """One kind served in one group-version, with the schema names its paths refer to."""

    resource_type: ResourceType
    version: str
    definition: str
    #: "" for the kinds that are only created (access reviews): they have no list.
    list_definition: str

    @property
    def gvk(self) -> JsonObject:
        return {"group": self.resource_type.group, "kind": self.resource_type.kind, "version": self.version}


class _GroupVersionBuilder:
    """Builds the v3 document of one group-version: its paths and the schemas they reach."""

    def __init__(self, documents: OpenAPIDocuments, group: str, version: str, kinds: list[_Kind]) -> None:
        self.documents = documents
        self.group = group
        self.version = version
        self.kinds = kinds
        self.prefix = "/" + group_version_path(group, version)
        self.tag = f"{_group_words(group)[:1].lower()}{_group_words(group)[1:]}_{version}"
        self.words = _group_words(group) + _camel(version)

    def build(self) -> JsonObject:
        paths: JsonObject = {}
        roots = {_STATUS, _DELETE_OPTIONS, _PATCH, _WATCH_EVENT}
        for kind in self.kinds:
            paths.update(self._paths(kind))
            roots |= {kind.definition, kind.list_definition} - {""}
            if "scale" in kind.resource_type.subresources:
                roots.add(_SCALE)
            if "token" in kind.resource_type.subresources:
                roots.add(_TOKEN_REQUEST)
        schemas = self.documents.schemas_v3(roots)
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_SCHEMA_VERSION},
            "paths": dict(sorted(paths.items())),
            "components": {
                "schemas": schemas,
                "securitySchemes": _BEARER_TOKEN_SCHEME,
            },
            "security": [{"BearerToken": []}],
        }

    def _operation(
        self, kind: _Kind, action: str, verb: str, suffix: str, *, namespaced: bool, gvk: JsonObject | None = None
    ) -> JsonObject:
        scope = "Namespaced" if namespaced else ""
        operation_id = f"{verb}{self.words}{scope}{kind.resource_type.kind}{suffix}"
        return {
            "description": f"{action} {kind.resource_type.kind}{suffix.lower() and ' ' + suffix.lower()}",
            "operationId": operation_id,
            "tags": [self.tag],
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk or kind.gvk,
            "responses": {"401": {"description": "Unauthorized"}},
        }

    def _media_types(self, kind: _Kind) -> tuple[str, ...]:
        return (_JSON, _YAML) if kind.resource_type.is_custom else (_JSON, _PROTOBUF, _YAML)

    def _object_operations(
        self,
        kind: _Kind,
        schema_name: str,
        suffix: str,
        *,
        namespaced: bool,
        gvk: JsonObject | None = None,
        with_delete: bool = True,
    ) -> JsonObject:
        """get, put, patch (and delete) on one object or on one of its subresources."""
        media_types = self._media_types(kind)
        body = _content(_ref(schema_name), media_types)
        get = self._operation(kind, "get", "read", suffix, namespaced=namespaced, gvk=gvk)
        get["responses"]["200"] = {"description": "OK", "content": body}
        put = self._operation(kind, "put", "replace", suffix, namespaced=namespaced, gvk=gvk)
        put["parameters"] = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
        put["requestBody"] = {"required": True, "content": _content(_ref(schema_name), media_types)}
        put["responses"] |= {
            "200": {"description": "OK", "content": body},
            "201": {"description": "Created", "content": body},
        }
        patch = self._operation(kind, "patch", "patch", suffix, namespaced=namespaced, gvk=gvk)
        patch_types = _PATCH_TYPES if kind.resource_type.is_custom else (*_PATCH_TYPES, _STRATEGIC_MERGE_PATCH)
        patch["parameters"] = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE]
        patch["requestBody"] = {"required": True, "content": _content(_ref(_PATCH), patch_types)}
        patch["responses"] |= {
            "200": {"description": "OK", "content": body},
            "201": {"description": "Created", "content": body},
        }
        operations = {"get": get, "put": put, "patch": patch}
        if with_delete:
            delete = self._operation(kind, "delete", "delete", suffix, namespaced=namespaced)
            delete["parameters"] = _DELETE_PARAMETERS
            delete["requestBody"] = {"content": _content(_ref(_DELETE_OPTIONS), (_JSON, _YAML))}
            status = _content(_ref(_STATUS), media_types)
            delete["responses"] |= {
                "200": {"description": "OK", "content": status},
                "202": {"description": "Accepted", "content": status},
            }
            operations["delete"] = delete
        return operations

    def _create_operation(
        self, kind: _Kind, schema_name: str, suffix: str, *, namespaced: bool, gvk: JsonObject | None = None
    ) -> JsonObject:
        media_types = self._media_types(kind)
        create = self._operation(kind, "post", "create", suffix, namespaced=namespaced, gvk=gvk)
        create["parameters"] = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
        create["requestBody"] = {"required": True, "content": _content(_ref(schema_name), media_types)}
        created = _content(_ref(schema_name), media_types)
        create["responses"] |= {
            status: {"description": text, "content": created}
            for status, text in (("200", "OK"), ("201", "Created"), ("202", "Accepted"))
        }
        return create

    def _collection_operations(self, kind: _Kind, *, namespaced: bool) -> JsonObject:
        media_types = self._media_types(kind)
        listing = self._operation(kind, "list", "list", "", namespaced=namespaced)
        listing["parameters"] = _LIST_PARAMETERS
        listing["responses"]["200"] = {
            "description": "OK",
            "content": _content(_ref(kind.list_definition), (*media_types, "application/json;stream=watch")),
        }
        create = self._create_operation(kind, kind.definition, "", namespaced=namespaced)
        delete_collection = self._operation(kind, "deletecollection", "delete", "", namespaced=namespaced)
        delete_collection["operationId"] = delete_collection["operationId"].replace(
            f"delete{self.words}", f"delete{self.words}Collection", 1
        )
        delete_collection["parameters"] = [*_LIST_PARAMETERS, *_DELETE_PARAMETERS]
        delete_collection["requestBody"] = {"content": _content(_ref(_DELETE_OPTIONS), (_JSON, _YAML))}
        delete_collection["responses"]["200"] = {"description": "OK", "content": _content(_ref(_STATUS), media_types)}
        return {"get": listing, "post": create, "delete": delete_collection}

    def _paths(self, kind: _Kind) -> Iterator[tuple[str, JsonObject]]:
        resource_type = kind.resource_type
        plural = resource_type.plural
        namespaced = resource_type.namespaced
        collection = f"{self.prefix}/namespaces/{{namespace}}/{plural}" if namespaced else f"{self.prefix}/{plural}"
        scope_parameters = [_NAMESPACE, _PRETTY] if namespaced else [_PRETTY]
        name = _path_parameter("name", f"name of the {resource_type.kind}")
        if resource_type.answered:
            create = self._create_operation(kind, kind.definition, "", namespaced=namespaced)
            yield collection, {"post": create, "parameters": scope_parameters}
            return
        yield collection, {**self._collection_operations(kind, namespaced=namespaced), "parameters": scope_parameters}
        item = f"{collection}/{{name}}"
        yield (
            item,
            {
                **self._object_operations(kind, kind.definition, "", namespaced=namespaced),
                "parameters": [name, *scope_parameters],
            },
        )
        if namespaced:
            listing = self._operation(kind, "list", "list", "ForAllNamespaces", namespaced=False)
            listing["operationId"] = f"list{self.words}{resource_type.kind}ForAllNamespaces"
            listing["parameters"] = _LIST_PARAMETERS
            listing["responses"]["200"] = {
                "description": "OK",
                "content": _content(_ref(kind.list_definition), self._media_types(kind)),
            }
            yield f"{self.prefix}/{plural}", {"get": listing, "parameters": [_PRETTY]}
        if "status" in resource_type.subresources:
            yield (
                f"{item}/status",
                {
                    **self._object_operations(
                        kind, kind.definition, "Status", namespaced=namespaced, with_delete=False
                    ),
                    "parameters": [name, *scope_parameters],
                },
            )
        if "scale" in resource_type.subresources:
            scale_gvk = {"group": "autoscaling", "kind": "Scale", "version": "v1"}
            yield (
                f"{item}/scale",
                {
                    **self._object_operations(
                        kind, _SCALE, "Scale", namespaced=namespaced, gvk=scale_gvk, with_delete=False
                    ),
                    "parameters": [name, *scope_parameters],
                },
            )
        if "token" in resource_type.subresources:
            token_gvk = {"group": "authentication.k8s.io", "kind": "TokenRequest", "version": "v1"}
            create = self._create_operation(kind, _TOKEN_REQUEST, "Token", namespaced=namespaced, gvk=token_gvk)
            yield f"{item}/token", {"post": create, "parameters": [name, *scope_parameters]}
        if "log" in resource_type.subresources:
            log = self._operation(kind, "get", "read", "Log", namespaced=namespaced)
            log["responses"]["200"] = {"description": "OK", "content": _content({"type": "string"}, ("text/plain",))}
            yield f"{item}/log", {"get": log, "parameters": [name, *scope_parameters]}


class OpenAPIDocuments:
    """The v3 root, the per group-version v3 documents and the v2 document, each built once on first use."""

    def __init__(self, index: SchemaIndex) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._group_versions: dict[str, tuple[bytes, str]] = {}

    @cached_property
    def _kinds(self) -> dict[str, list[_Kind]]:
        found: dict[str, list[_Kind]] = {}
        for resource_type in self.index.registry:
            for version in resource_type.versions:
                kind = self._kind(resource_type, version)
                if kind is not None:
                    found.setdefault(group_version_path(resource_type.group, version), []).append(kind)
        return found

    def _kind(self, resource_type: ResourceType, version: str) -> _Kind | None:
        if resource_type.is_custom:
            name: str | None = crd_definition_name(resource_type.group, version, resource_type.kind)
        else:
            name = self.index.definition_name(resource_type, version)
            if resource_type.answered:
                return None if name is None else _Kind(resource_type, version, name, "")
            if name is not None and name + "List" not in self.index.definitions:
                name = None
        return None if name is None else _Kind(resource_type, version, name, name + "List")

    @cached_property
    def _custom_definitions(self) -> dict[str, JsonObject]:
        """CRD schemas in `$defs` form, so built-in and custom schemas go through one conversion."""
        definitions: dict[str, JsonObject] = {}
        for kinds in self._kinds.values():
            for kind in kinds:
                if not kind.resource_type.is_custom:
                    continue
                schema = copy.deepcopy(self.index.for_type(kind.resource_type, kind.version))
                properties = schema.setdefault("properties", {})
                properties["metadata"] = {
                    "$ref": _DEFS_REF + _OBJECT_META,
                    "description": "Standard object's metadata. More info: "
                    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                }
                properties.setdefault("apiVersion", {"type": "string"})
                properties.setdefault("kind", {"type": "string"})
                schema["x-kubernetes-group-version-kind"] = [kind.gvk]
                definitions[kind.definition] = schema
                definitions[kind.list_definition] = {
                    "description": f"{kind.resource_type.kind}List is a list of {kind.resource_type.kind}",
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "items": {"type": "array", "items": {"$ref": _DEFS_REF + kind.definition}},
                        "metadata": {"$ref": _DEFS_REF + _LIST_META},
                    },
                    "x-kubernetes-group-version-kind": [{**kind.gvk, "kind": kind.resource_type.list_kind}],
                }
        return definitions

    def _definition(self, name: str) -> JsonObject | None:
        return self._custom_definitions.get(name) or self.index.definitions.get(name)

    def _closure(self, roots: set[str]) -> list[str]:
        """The names of every definition reachable from `roots` through `$ref`s."""
        seen: set[str] = set()
        pending = [name for name in roots if self._definition(name) is not None]
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            pending.extend(ref for ref in _refs(self._definition(name)) if ref not in seen)
        return sorted(seen)

    def schemas_v3(self, roots: set[str]) -> JsonObject:
        return {name: _convert(self._definition(name), _V3_REF, v3=True) for name in self._closure(roots)}

    def root_v3(self) -> JsonObject:
        """The `/openapi/v3` discovery document: one hashed URL per group-version."""
        return {
            "paths": {
                path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={self.group_version(path)[1]}"}
                for path in sorted(self._kinds)
            }
        }

    def group_version(self, path: str) -> tuple[bytes, str]:
        """The JSON bytes and ETag of one group-version document (`api/v1`, `apis/apps/v1`, ...)."""
        if path not in self._kinds:
            raise NotFound(f"the server could not find the OpenAPI document of {path}")
        with self._lock:
            if path not in self._group_versions:
                kinds = self._kinds[path]
                group, version = kinds[0].resource_type.group, kinds[0].version
                document = _GroupVersionBuilder(self, group, version, kinds).build()
                self._group_versions[path] = _encoded(document)
            return self._group_versions[path]

    def group_version_document(self, path: str) -> JsonObject:
        return json.loads(self.group_version(path)[0])

    @cached_property
    def v2(self) -> tuple[bytes, str]:
        """The swagger 2.0 document of every group-version, with `#/definitions/` refs."""
        paths: JsonObject = {}
        roots: set[str] = set()
        for path in sorted(self._kinds):
            document = self.group_version_document(path)
            roots |= set(document["components"]["schemas"])
            for route, item in document["paths"].items():
                paths[route] = {
                    method: _operation_v2(op)
                    if method != "parameters"
                    else [_parameter_v2(parameter) for parameter in op]
                    for method, op in item.items()
                }
        document = {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_SCHEMA_VERSION},
            "paths": paths,
            "definitions": {name: _convert(self._definition(name), _V2_REF, v3=False) for name in self._closure(roots)},
            "securityDefinitions": _BEARER_TOKEN_SCHEME,
            "security": [{"BearerToken": []}],
        }
        return _encoded(document)

    @cached_property
    def v2_protobuf(self) -> tuple[bytes, str]:
        """The swagger 2.0 document as gnostic's protobuf, which is how kubectl reads it."""
        body = encode_openapi_v2(json.loads(self.v2[0]))
        return body, hashlib.sha512(body).hexdigest().upper()


def _encoded(document: JsonObject) -> tuple[bytes, str]:
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return body, hashlib.sha512(body).hexdigest().upper()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_REF):
            yield ref.removeprefix(_DEFS_REF)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _convert(node: Any, ref_prefix: str, *, v3: bool) -> Any:
    """A `$defs` JSON Schema node as OpenAPI writes it.

    `["string", "null"]` types become `type: string` (built-in definitions carry no nullability upstream;
    CRD nodes keep their `nullable`), refs move under `ref_prefix` (wrapped in `allOf` in v3 when they
    have siblings, as upstream's v3 does), union types of IntOrString and Quantity become upstream's
    forms, and the generator-added `enum`s of apiVersion and kind are dropped.
    """
    if isinstance(node, list):
        return [_convert(item, ref_prefix, v3=v3) for item in node]
    if not isinstance(node, dict):
        return node
    converted: JsonObject = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            converted[key] = {
                name: _convert(_drop_kind_enum(name, schema), ref_prefix, v3=v3) for name, schema in value.items()
            }
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            converted[key] = types[0] if len(types) == 1 else types
        elif key == "oneOf" and _is_type_union(value):
            converted.update(_type_union(value, v3=v3))
        elif key == "$ref" and isinstance(value, str):
            converted[key] = ref_prefix + value.removeprefix(_DEFS_REF)
        else:
            converted[key] = _convert(value, ref_prefix, v3=v3)
    if v3 and "$ref" in converted and len(converted) > 1:
        converted["allOf"] = [{"$ref": converted.pop("$ref")}]
    return converted


def _drop_kind_enum(name: str, schema: Any) -> Any:
    if name in ("apiVersion", "kind") and isinstance(schema, dict) and "enum" in schema:
        return {key: value for key, value in schema.items() if key != "enum"}
    return schema


def _is_type_union(members: Any) -> bool:
    return (
        isinstance(members, list)
        and bool(members)
        and all(isinstance(member, dict) and set(member) == {"type"} for member in members)
    )


def _type_union(members: list[JsonObject], *, v3: bool) -> JsonObject:
    types: list[str] = []
    for member in members:
        member_types = member["type"] if isinstance(member["type"], list) else [member["type"]]
        types.extend(t for t in member_types if t != "null" and t not in types)
    int_or_string = set(types) == {"integer", "string"}
    if v3:
        union: JsonObject = {"oneOf": [{"type": t} for t in sorted(types)]}
        return {**union, "format": "int-or-string"} if int_or_string else union
    return {"type": "string", "format": "int-or-string"} if int_or_string else {"type": "string"}


def _parameter_v2(parameter: JsonObject) -> JsonObject:
    converted = {key: value for key, value in parameter.items() if key != "schema"}
    converted.update(parameter.get("schema", {}))
    return converted


def _operation_v2(operation: JsonObject) -> JsonObject:
    """A v3 operation in swagger 2.0 form: a body parameter, consumes/produces, response schemas."""
    converted = {
        key: value for key, value in operation.items() if key not in ("requestBody", "responses", "parameters")
    }
    parameters = [_parameter_v2(parameter) for parameter in operation.get("parameters", ())]
    request_body = operation.get("requestBody")
    if request_body is not None:
        content = request_body["content"]
        schema = next(iter(content.values()))["schema"]
        parameters.append(
            {"in": "body", "name": "body", "required": bool(request_body.get("required")), "schema": _v2_refs(schema)}
        )
        converted["consumes"] = list(content)
    if parameters:
        converted["parameters"] = parameters
    produces: list[str] = []
    responses: JsonObject = {}
    for status, response in operation["responses"].items():
        responses[status] = {"description": response["description"]}
        for media_type, body in response.get("content", {}).items():
            responses[status]["schema"] = _v2_refs(body["schema"])
            if media_type not in produces:
                produces.append(media_type)
    converted["responses"] = responses
    if produces:
        converted["produces"] = produces
    converted["schemes"] = ["https"]
    return converted


def _v2_refs(schema: JsonObject) -> JsonObject:
    ref = schema.get("$ref")
    return {"$ref": _V2_REF + ref.removeprefix(_V3_REF)} if isinstance(ref, str) else schema


# HTTP.


def _accepts_json(accept: str) -> bool | None:
    """True when the Accept header admits JSON, False when it admits only protobuf, None for anything else."""
    saw_protobuf = False
    for clause in (accept or "*/*").split(","):
        media_type, *parameters = (part.strip() for part in clause.split(";"))
        if any(parameter.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for parameter in parameters):
            continue
        if media_type in ("*/*", "application/*", _JSON):
            return True
        if media_type.startswith("application/") and media_type.removeprefix("application/") in (
            *_PROTOBUF_OPENAPI,
            "com.github.proto-openapi.spec.v2@v1.0+protobuf",
            "vnd.kubernetes.protobuf",
        ):
            saw_protobuf = True
    return False if saw_protobuf else None


def _wants_v2_protobuf(accept: str) -> bool:
    """Whether the Accept header prefers OpenAPI v2 as protobuf to JSON: higher q, or equal q and listed first."""
    best: dict[str, tuple[float, int]] = {}
    for position, clause in enumerate(accept.split(",")):
        media_type, *parameters = (part.strip() for part in clause.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.replace(" ", "").partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media_type in ("*/*", "application/*", _JSON):
            offered = "json"
        elif media_type in _PROTOBUF_OPENAPI_V2:
            offered = "protobuf"
        else:
            continue
        if quality > 0 and (offered not in best or quality > best[offered][0]):
            best[offered] = (quality, -position)
    return "protobuf" in best and best["protobuf"] > best.get("json", (0.0, 0))


def _not_acceptable(accept: str) -> Response:
    status = ApiError(f"only application/json is served here, not {accept}").status()
    status.update(reason="NotAcceptable", code=406)
    return Response(json.dumps(status), status_code=406, media_type=_JSON)


def _serve(
    request: Request,
    body: bytes,
    etag: str,
    *,
    immutable: bool,
    negotiate: bool = True,
    media_type: str = _JSON,
) -> Response:
    accept = request.headers.get("accept", "")
    if negotiate and not _accepts_json(accept):
        return _not_acceptable(accept)
    headers = {"ETag": f'"{etag}"', "Vary": "Accept"}
    if immutable:
        headers["Cache-Control"] = "public, immutable"
        headers["Expires"] = formatdate(time.time() + _ONE_YEAR_SECONDS, usegmt=True)
    else:
        headers["Cache-Control"] = "no-cache, private"
    if request.headers.get("if-none-match", "").strip() in (f'"{etag}"', etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def openapi_routes(index: SchemaIndex) -> list[Route]:
    """Starlette routes serving `/openapi/v3`, `/openapi/v3/{group-version}` and `/openapi/v2`."""
    documents = OpenAPIDocuments(index)

    def handler(build: Callable[[Request], Response]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                return build(request)
            except ApiError as error:
                return Response(json.dumps(error.status()), status_code=error.code, media_type=_JSON)

        return endpoint

    def root(request: Request) -> Response:
        body, etag = _encoded(documents.root_v3())
        # As upstream, the root is JSON whatever the Accept header says.
        return _serve(request, body, etag, immutable=False, negotiate=False)

    def group_version(request: Request) -> Response:
        path = request.path_params["path"].strip("/")
        body, etag = documents.group_version(path)
        requested = request.query_params.get("hash")
        if requested and requested != etag:
            return RedirectResponse(f"/openapi/v3/{path}?hash={etag}", status_code=301)
        return _serve(request, body, etag, immutable=bool(requested))

    def v2(request: Request) -> Response:
        if _wants_v2_protobuf(request.headers.get("accept", "")):
            body, etag = documents.v2_protobuf
            return _serve(request, body, etag, immutable=False, negotiate=False, media_type=_PROTOBUF_OPENAPI_V2[1])
        body, etag = documents.v2
        return _serve(request, body, etag, immutable=False)

    return [
        Route("/openapi/v3", handler(root), methods=["GET"]),
        Route("/openapi/v3/{path:path}", handler(group_version), methods=["GET"]),
        Route("/openapi/v2", handler(v2), methods=["GET"]),
    ]
