"""Kubernetes protobuf bodies, built field by field from the wire format, decode to the JSON the apiserver writes.

The bodies here are assembled by hand from field numbers of upstream's generated.proto (quoted at each
use), independently of the message table the decoder reads; kubectl's own bodies are tested in
tests/integration/test_kubectl_imperative.py.
"""

from __future__ import annotations

import base64
import json
import struct

import pytest

from localcluster.api.openapi import OpenAPIDocuments, _wants_v2_protobuf
from localcluster.api.protobuf import MAGIC, ProtobufError, UnsupportedKind, decode_object, encode_openapi_v2
from localcluster.api.protobuf._kubernetes import table
from localcluster.api.protobuf._wire import VARINT, WireError, fields, key, length_delimited, varint
from localcluster.api.schemas import SchemaIndex


def text(number: int, value: str) -> bytes:
    return length_delimited(number, value.encode())


def number(field: int, value: int) -> bytes:
    return key(field, VARINT) + varint(value)


def message(field: int, *parts: bytes) -> bytes:
    return length_delimited(field, b"".join(parts))


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    # runtime.Unknown: typeMeta = 1 (TypeMeta: apiVersion = 1, kind = 2), raw = 2
    return MAGIC + message(1, text(1, api_version), text(2, kind)) + length_delimited(2, raw)


def map_entry(field: int, name: str, value: bytes) -> bytes:
    return message(field, text(1, name), length_delimited(2, value))


def test_a_deployment_decodes_with_pointer_zeros_kept_and_empty_values_dropped() -> None:
    # ObjectMeta: name = 1, creationTimestamp = 8 (a zero Time is an empty message), labels = 11
    metadata = message(1, text(1, "web"), length_delimited(8, b""), map_entry(11, "app", b"web"))
    # Container: name = 1, image = 2, ports = 6 (containerPort = 3), resources = 8 (limits = 1), stdin = 16
    container = message(
        2,
        text(1, "web"),
        text(2, "nginx"),
        message(6, number(3, 80)),
        message(8, map_entry(1, "cpu", text(1, "500m"))),
        number(16, 0),
    )
    # PodTemplateSpec: metadata = 1, spec = 2 (PodSpec: containers = 2, hostNetwork = 11)
    template = message(3, message(1, map_entry(11, "app", b"web")), message(2, container, number(11, 0)))
    # DeploymentSpec: replicas = 1 (*int32), selector = 2, template = 3, paused = 7 (bool, omitempty)
    spec = message(2, number(1, 0), message(2, map_entry(1, "app", b"web")), template, number(7, 0))
    decoded = decode_object(envelope("apps/v1", "Deployment", metadata + spec))
    assert decoded == {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx",
                            "ports": [{"containerPort": 80}],
                            "resources": {"limits": {"cpu": "500m"}},
                        }
                    ]
                },
            },
        },
    }


def test_int_or_string_time_bytes_and_inlined_structs() -> None:
    # ServiceSpec.ports = 1; ServicePort: name = 1, port = 3, targetPort = 4 (IntOrString: type = 1,
    # intVal = 2, strVal = 3)
    ports = message(1, text(1, "http"), number(3, 80), message(4, number(1, 1), text(3, "web"))) + message(
        1, number(3, 443), message(4, number(2, 8443))
    )
    service = decode_object(envelope("v1", "Service", message(1, text(1, "web")) + length_delimited(2, ports)))
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "web"},
        {"port": 443, "targetPort": 8443},
    ]

    # Secret: data = 2 (map<string, bytes>); ObjectMeta creationTimestamp = 8 (Time: seconds = 1)
    secret = decode_object(
        envelope(
            "v1",
            "Secret",
            message(1, text(1, "s"), message(8, number(1, 1_700_000_000))) + map_entry(2, "pw", b"\x00\xff"),
        )
    )
    assert secret["data"] == {"pw": base64.b64encode(b"\x00\xff").decode()}
    assert secret["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"

    # Pod: spec = 2; PodSpec volumes = 1; Volume: name = 1, volumeSource = 2 (inlined; emptyDir = 2)
    pod = decode_object(envelope("v1", "Pod", message(2, message(1, text(1, "cache"), message(2, message(2))))))
    assert pod["spec"]["volumes"] == [{"name": "cache", "emptyDir": {}}]


def test_negative_and_packed_numbers() -> None:
    # PodSecurityContext (PodSpec.securityContext = 14): runAsUser = 2 (*int64), supplementalGroups = 4 (packed)
    packed = length_delimited(4, varint(1000) + varint(2000))
    pod = decode_object(envelope("v1", "Pod", message(2, message(14, number(2, -1), packed))))
    assert pod["spec"]["securityContext"] == {"runAsUser": -1, "supplementalGroups": [1000, 2000]}


def test_delete_options_decode_in_any_group_version() -> None:
    # DeleteOptions: gracePeriodSeconds = 1, propagationPolicy = 4
    decoded = decode_object(envelope("apps/v1", "DeleteOptions", number(1, 0) + text(4, "Foreground")))
    assert decoded == {
        "kind": "DeleteOptions",
        "apiVersion": "apps/v1",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Foreground",
    }


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        (b'{"kind": "Pod"}', ProtobufError, "magic"),
        (MAGIC + b"\x0a\xff", ProtobufError, "could not be read"),
        (envelope("v1", "Pod", b"\x12\x05ab"), ProtobufError, "could not be read"),
        (envelope("example.com/v1", "Widget", b""), UnsupportedKind, "Widget"),
    ],
)
def test_bodies_that_cannot_be_read_say_why(body: bytes, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        decode_object(body)


def test_the_message_table_is_closed_and_names_its_source() -> None:
    messages = table().messages
    for name, by_number in messages.items():
        for field in by_number.values():
            for part in field.type.removeprefix("map:").split(":"):
                assert "." not in part or part in messages, f"{name}.{field.proto_name} refers to missing {part}"
    assert "k8s.io.api.apps.v1.Deployment" in messages and "k8s.io.api.batch.v1.Job" in messages


def test_wire_errors_are_caught() -> None:
    with pytest.raises(WireError):
        list(fields(b"\x0a\x05ab"))
    with pytest.raises(WireError):
        list(fields(b"\x0b"))  # wire type 3: a group


# --- OpenAPI v2 as gnostic's protobuf ------------------------------------------------------------


def _read(data: bytes) -> dict[int, list[bytes | int]]:
    found: dict[int, list[bytes | int]] = {}
    for field_number, _wire_type, value in fields(data):
        found.setdefault(field_number, []).append(value)
    return found


@pytest.fixture(scope="module")
def swagger(index: SchemaIndex) -> dict:
    documents = OpenAPIDocuments(index)
    return json.loads(documents.v2[0])


def test_openapi_v2_protobuf_carries_definitions_with_their_kinds(swagger: dict) -> None:
    document = _read(encode_openapi_v2(swagger))
    assert document[1] == [b"2.0"]  # Document.swagger = 1
    definitions = {}
    for named in _read(document[9][0])[1]:  # Document.definitions = 9; Definitions.additional_properties = 1
        pair = _read(named)  # NamedSchema: name = 1, value = 2
        definitions[pair[1][0]] = _read(pair[2][0])
    assert len(definitions) == len(swagger["definitions"])
    deployment = definitions[b"io.k8s.api.apps.v1.Deployment"]
    assert _read(deployment[22][0])[1] == [b"object"]  # Schema.type = 22 (TypeItem.value = 1)
    extensions = {_read(e)[1][0]: _read(_read(e)[2][0])[2][0] for e in deployment[31]}  # vendor_extension = 31
    assert json.loads(extensions[b"x-kubernetes-group-version-kind"]) == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    properties = {_read(p)[1][0]: _read(_read(p)[2][0]) for p in _read(deployment[25][0])[1]}  # properties = 25
    assert properties[b"spec"][1] == [b"#/definitions/io.k8s.api.apps.v1.DeploymentSpec"]  # Schema._ref = 1


def test_openapi_v2_protobuf_encodes_parameters_by_where_they_go(swagger: dict) -> None:
    operation = {
        "parameters": [
            {"in": "body", "name": "body", "required": True, "schema": {"$ref": "#/definitions/x"}},
            {"in": "query", "name": "dryRun", "type": "string", "uniqueItems": True},
            {"$ref": "#/parameters/pretty"},
        ],
        "responses": {"200": {"description": "OK", "schema": {"type": "object"}}},
    }
    encoded = encode_openapi_v2({"paths": {"/x": {"post": operation}}})
    path_item = _read(_read(_read(_read(encoded)[8][0])[2][0])[2][0])  # paths = 8 → path = 2 → value = 2
    post = _read(path_item[4][0])  # PathItem.post = 4
    body, query, reference = (_read(p) for p in post[8])  # Operation.parameters = 8 (ParametersItem)
    assert _read(_read(body[1][0])[1][0])[4] == [1]  # Parameter.body_parameter = 1; BodyParameter.required = 4
    query_schema = _read(_read(_read(query[1][0])[2][0])[3][0])  # non_body = 2 → query = 3
    assert query_schema[4] == [b"dryRun"] and query_schema[20] == [1]  # name = 4, unique_items = 20
    assert _read(reference[2][0])[1] == [b"#/parameters/pretty"]  # ParametersItem.json_reference = 2


def test_numbers_in_schemas_are_doubles_and_int64s() -> None:
    schema = _read(
        _read(_read(_read(encode_openapi_v2({"definitions": {"n": {"minimum": 1.5, "maxLength": 3}}}))[9][0])[1][0])[2][
            0
        ]
    )
    assert schema[9] == [int.from_bytes(struct.pack("<d", 1.5), "little")]  # Schema.minimum = 9 (double)
    assert schema[11] == [3]  # Schema.max_length = 11 (int64)


@pytest.mark.parametrize(
    ("accept", "protobuf"),
    [
        ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", True),
        ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json", True),
        ("application/json, application/com.github.proto-openapi.spec.v2.v1.0+protobuf", False),
        ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf; q=0.5, application/json", False),
        ("", False),
    ],
)
def test_openapi_v2_protobuf_is_served_when_preferred(accept: str, protobuf: bool) -> None:
    assert _wants_v2_protobuf(accept) is protobuf
