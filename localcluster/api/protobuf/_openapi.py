"""A swagger 2.0 document as gnostic's `openapi.v2.Document`, the protobuf kubectl asks `/openapi/v2` for.

kubectl reads OpenAPI v2 only as protobuf (client-go's `OpenAPISchema()` unmarshals the body whatever
its content type), for client-side validation of kinds the server's v3 document does not list and of
`kind: List` files. The messages and field numbers are those of gnostic-models' openapiv2/OpenAPIv2.proto;
how a JSON document maps onto them follows gnostic's reader: named maps become repeated `Named*` pairs,
`x-` keys become vendor extensions, oneofs are chosen as gnostic chooses them (a `$ref` is a
JsonReference, `in: body` a BodyParameter), and every free-form value is an `Any` holding its YAML
(JSON, which is YAML).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from localcluster.api.protobuf._wire import FIXED64, VARINT, key, length_delimited, varint

#: Field type names: scalars, `Any`, message names; a leading `*` makes the field repeated.
_Fields = dict[str, tuple[int, str]]

_PRIMITIVE_CHECKS: _Fields = {
    "maximum": (6, "double"),
    "exclusiveMaximum": (7, "bool"),
    "minimum": (8, "double"),
    "exclusiveMinimum": (9, "bool"),
    "maxLength": (10, "int64"),
    "minLength": (11, "int64"),
    "pattern": (12, "string"),
    "maxItems": (13, "int64"),
    "minItems": (14, "int64"),
    "uniqueItems": (15, "bool"),
    "enum": (16, "*Any"),
    "multipleOf": (17, "double"),
}


def _shifted(fields: _Fields, by: int) -> _Fields:
    return {name: (number + by, kind) for name, (number, kind) in fields.items()}


#: Path and header parameters: required, in, description, name, type, format, items, collectionFormat,
#: default, then the checks; query and form parameters put allowEmptyValue at 5 and shift the rest by one.
_PATH_PARAMETER: _Fields = {
    "required": (1, "bool"),
    "in": (2, "string"),
    "description": (3, "string"),
    "name": (4, "string"),
    "type": (5, "string"),
    "format": (6, "string"),
    "items": (7, "PrimitivesItems"),
    "collectionFormat": (8, "string"),
    "default": (9, "Any"),
    **_shifted(_PRIMITIVE_CHECKS, 4),
}
_QUERY_PARAMETER: _Fields = {
    **{name: (n if n < 5 else n + 1, kind) for name, (n, kind) in _PATH_PARAMETER.items()},
    "allowEmptyValue": (5, "bool"),
}

#: message name -> (fields by JSON key, field number of vendor extensions or 0)
_MESSAGES: dict[str, tuple[_Fields, int]] = {
    "Document": (
        {
            "swagger": (1, "string"),
            "info": (2, "Info"),
            "host": (3, "string"),
            "basePath": (4, "string"),
            "schemes": (5, "*string"),
            "consumes": (6, "*string"),
            "produces": (7, "*string"),
            "paths": (8, "Paths"),
            "definitions": (9, "Definitions"),
            "parameters": (10, "ParameterDefinitions"),
            "responses": (11, "ResponseDefinitions"),
            "security": (12, "*SecurityRequirement"),
            "securityDefinitions": (13, "SecurityDefinitions"),
            "tags": (14, "*Tag"),
            "externalDocs": (15, "ExternalDocs"),
        },
        16,
    ),
    "Info": (
        {
            "title": (1, "string"),
            "version": (2, "string"),
            "description": (3, "string"),
            "termsOfService": (4, "string"),
            "contact": (5, "Contact"),
            "license": (6, "License"),
        },
        7,
    ),
    "Contact": ({"name": (1, "string"), "url": (2, "string"), "email": (3, "string")}, 4),
    "License": ({"name": (1, "string"), "url": (2, "string")}, 3),
    "ExternalDocs": ({"description": (1, "string"), "url": (2, "string")}, 3),
    "Tag": ({"name": (1, "string"), "description": (2, "string"), "externalDocs": (3, "ExternalDocs")}, 4),
    "PathItem": (
        {
            "$ref": (1, "string"),
            "get": (2, "Operation"),
            "put": (3, "Operation"),
            "post": (4, "Operation"),
            "delete": (5, "Operation"),
            "options": (6, "Operation"),
            "head": (7, "Operation"),
            "patch": (8, "Operation"),
            "parameters": (9, "*ParametersItem"),
        },
        10,
    ),
    "Operation": (
        {
            "tags": (1, "*string"),
            "summary": (2, "string"),
            "description": (3, "string"),
            "externalDocs": (4, "ExternalDocs"),
            "operationId": (5, "string"),
            "produces": (6, "*string"),
            "consumes": (7, "*string"),
            "parameters": (8, "*ParametersItem"),
            "responses": (9, "Responses"),
            "schemes": (10, "*string"),
            "deprecated": (11, "bool"),
            "security": (12, "*SecurityRequirement"),
        },
        13,
    ),
    "JsonReference": ({"$ref": (1, "string"), "description": (2, "string")}, 0),
    "BodyParameter": (
        {
            "description": (1, "string"),
            "name": (2, "string"),
            "in": (3, "string"),
            "required": (4, "bool"),
            "schema": (5, "Schema"),
        },
        6,
    ),
    "HeaderParameterSubSchema": (_PATH_PARAMETER, 22),
    "PathParameterSubSchema": (_PATH_PARAMETER, 22),
    "QueryParameterSubSchema": (_QUERY_PARAMETER, 23),
    "FormDataParameterSubSchema": (_QUERY_PARAMETER, 23),
    "PrimitivesItems": (
        {
            "type": (1, "string"),
            "format": (2, "string"),
            "items": (3, "PrimitivesItems"),
            "collectionFormat": (4, "string"),
            "default": (5, "Any"),
            **_shifted(_PRIMITIVE_CHECKS, 0),
        },
        18,
    ),
    "Response": (
        {
            "description": (1, "string"),
            "schema": (2, "SchemaItem"),
            "headers": (3, "Headers"),
            "examples": (4, "Examples"),
        },
        5,
    ),
    "Header": (
        {
            "type": (1, "string"),
            "format": (2, "string"),
            "items": (3, "PrimitivesItems"),
            "collectionFormat": (4, "string"),
            "default": (5, "Any"),
            **_shifted(_PRIMITIVE_CHECKS, 0),
            "description": (18, "string"),
        },
        19,
    ),
    "Schema": (
        {
            "$ref": (1, "string"),
            "format": (2, "string"),
            "title": (3, "string"),
            "description": (4, "string"),
            "default": (5, "Any"),
            "multipleOf": (6, "double"),
            "maximum": (7, "double"),
            "exclusiveMaximum": (8, "bool"),
            "minimum": (9, "double"),
            "exclusiveMinimum": (10, "bool"),
            "maxLength": (11, "int64"),
            "minLength": (12, "int64"),
            "pattern": (13, "string"),
            "maxItems": (14, "int64"),
            "minItems": (15, "int64"),
            "uniqueItems": (16, "bool"),
            "maxProperties": (17, "int64"),
            "minProperties": (18, "int64"),
            "required": (19, "*string"),
            "enum": (20, "*Any"),
            "additionalProperties": (21, "AdditionalPropertiesItem"),
            "type": (22, "TypeItem"),
            "items": (23, "ItemsItem"),
            "allOf": (24, "*Schema"),
            "properties": (25, "Properties"),
            "discriminator": (26, "string"),
            "readOnly": (27, "bool"),
            "xml": (28, "Xml"),
            "externalDocs": (29, "ExternalDocs"),
            "example": (30, "Any"),
        },
        31,
    ),
    "FileSchema": (
        {
            "format": (1, "string"),
            "title": (2, "string"),
            "description": (3, "string"),
            "default": (4, "Any"),
            "required": (5, "*string"),
            "type": (6, "string"),
            "readOnly": (7, "bool"),
            "externalDocs": (8, "ExternalDocs"),
            "example": (9, "Any"),
        },
        10,
    ),
    "Xml": (
        {
            "name": (1, "string"),
            "namespace": (2, "string"),
            "prefix": (3, "string"),
            "attribute": (4, "bool"),
            "wrapped": (5, "bool"),
        },
        6,
    ),
    "ApiKeySecurity": (
        {"type": (1, "string"), "name": (2, "string"), "in": (3, "string"), "description": (4, "string")},
        5,
    ),
    "BasicAuthenticationSecurity": ({"type": (1, "string"), "description": (2, "string")}, 3),
}


def encode_openapi_v2(document: dict[str, Any]) -> bytes:
    """The protobuf of a swagger 2.0 document, as kube-openapi serves it to kubectl."""
    return _encode("Document", document)


def _encode(message: str, value: Any) -> bytes:
    custom = _CUSTOM.get(message)
    if custom is not None:
        return custom(value)
    declared, extensions = _MESSAGES[message]
    out = bytearray()
    for name, item in value.items():
        if name in declared:
            number, kind = declared[name]
            out += _field(number, kind, item)
        elif extensions and name.startswith("x-"):
            out += length_delimited(extensions, _named_any(name, item))
    return bytes(out)


def _field(number: int, kind: str, value: Any) -> bytes:
    if kind.startswith("*"):
        items = value if isinstance(value, list) else [value]
        return b"".join(_field(number, kind[1:], item) for item in items)
    if kind == "string":
        return length_delimited(number, str(value).encode())
    if kind == "bool":
        return key(number, VARINT) + varint(int(bool(value)))
    if kind == "int64":
        return key(number, VARINT) + varint(int(value))
    if kind == "double":
        return key(number, FIXED64) + _double(value)
    if kind == "Any":
        return length_delimited(number, _any(value))
    return length_delimited(number, _encode(kind, value))


def _double(value: Any) -> bytes:
    return struct.pack("<d", float(value))


def _any(value: Any) -> bytes:
    """gnostic's Any: the value as YAML text (field 2); JSON is YAML, and kube-openapi reads it as such."""
    return length_delimited(2, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _named(value_kind: str) -> Callable[[str, Any], bytes]:
    """A Named* pair: name (1) and value (2)."""

    def encode(name: str, value: Any) -> bytes:
        return length_delimited(1, name.encode()) + _field(2, value_kind, value)

    return encode


_named_any = _named("Any")


def _named_map(number: int, value_kind: str) -> Callable[[Any], bytes]:
    """A JSON object whose keys are names (definitions, properties): repeated Named* pairs at `number`."""
    pair = _named(value_kind)
    return lambda value: b"".join(length_delimited(number, pair(name, item)) for name, item in value.items())


def _paths(value: dict[str, Any]) -> bytes:
    pair = _named("PathItem")
    out = bytearray()
    for name, item in value.items():
        out += (
            length_delimited(1, _named_any(name, item))
            if name.startswith("x-")
            else length_delimited(2, pair(name, item))
        )
    return bytes(out)


def _responses(value: dict[str, Any]) -> bytes:
    pair = _named("ResponseValue")
    out = bytearray()
    for name, item in value.items():
        out += (
            length_delimited(2, _named_any(name, item))
            if name.startswith("x-")
            else length_delimited(1, pair(name, item))
        )
    return bytes(out)


def _reference_or(message: str) -> Callable[[Any], bytes]:
    """ParametersItem and ResponseValue: a `$ref` is a JsonReference (2), anything else the message (1)."""
    return lambda value: (
        length_delimited(2, _encode("JsonReference", value))
        if "$ref" in value
        else length_delimited(1, _encode(message, value))
    )


def _parameter(value: dict[str, Any]) -> bytes:
    if value.get("in") == "body":
        return length_delimited(1, _encode("BodyParameter", value))
    return length_delimited(2, _non_body_parameter(value))


_NON_BODY = {
    "header": (1, "HeaderParameterSubSchema"),
    "formData": (2, "FormDataParameterSubSchema"),
    "query": (3, "QueryParameterSubSchema"),
    "path": (4, "PathParameterSubSchema"),
}


def _non_body_parameter(value: dict[str, Any]) -> bytes:
    number, message = _NON_BODY.get(value.get("in", ""), (3, "QueryParameterSubSchema"))
    return length_delimited(number, _encode(message, value))


def _schema_item(value: dict[str, Any]) -> bytes:
    if value.get("type") == "file":
        return length_delimited(2, _encode("FileSchema", value))
    return length_delimited(1, _encode("Schema", value))


def _additional_properties(value: Any) -> bytes:
    if isinstance(value, bool):
        return key(2, VARINT) + varint(int(value))
    return length_delimited(1, _encode("Schema", value))


def _security_definitions_item(value: dict[str, Any]) -> bytes:
    if value.get("type") == "basic":
        return length_delimited(1, _encode("BasicAuthenticationSecurity", value))
    return length_delimited(2, _encode("ApiKeySecurity", value))


def _security_requirement(value: dict[str, Any]) -> bytes:
    pair = _named("StringArray")
    return b"".join(length_delimited(1, pair(name, scopes)) for name, scopes in value.items())


_CUSTOM: dict[str, Callable[[Any], bytes]] = {
    "Paths": _paths,
    "Responses": _responses,
    "Definitions": _named_map(1, "Schema"),
    "Properties": _named_map(1, "Schema"),
    "ParameterDefinitions": _named_map(1, "Parameter"),
    "ResponseDefinitions": _named_map(1, "Response"),
    "SecurityDefinitions": _named_map(1, "SecurityDefinitionsItem"),
    "Headers": _named_map(1, "Header"),
    "Examples": _named_map(1, "Any"),
    "ParametersItem": _reference_or("Parameter"),
    "ResponseValue": _reference_or("Response"),
    "Parameter": _parameter,
    "SchemaItem": _schema_item,
    "AdditionalPropertiesItem": _additional_properties,
    "SecurityDefinitionsItem": _security_definitions_item,
    "SecurityRequirement": _security_requirement,
    "StringArray": lambda value: b"".join(length_delimited(1, str(item).encode()) for item in value),
    "TypeItem": lambda value: b"".join(
        length_delimited(1, str(item).encode()) for item in (value if isinstance(value, list) else [value])
    ),
    "ItemsItem": lambda value: b"".join(
        length_delimited(1, _encode("Schema", item)) for item in (value if isinstance(value, list) else [value])
    ),
}
