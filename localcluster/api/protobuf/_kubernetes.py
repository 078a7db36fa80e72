"""Kubernetes objects in protobuf, as client-go's typed clients send them, decoded to their JSON form.

A body is the envelope every Kubernetes protobuf object travels in: the magic `k8s\\x00`, then a
`runtime.Unknown` whose `typeMeta` names the kind and whose `raw` holds the object's message. Messages
are read by the table in `messages.json` (field numbers and types from upstream's generated.proto, JSON
names and omitempty/pointer from its Go tags; see tools/kubernetes_protobuf_messages.py), and become
exactly the JSON the apiserver's Go structs would marshal: inlined structs merged into their parent,
zero values of `omitempty` fields dropped unless the Go field is a pointer (`replicas: 0` stays), and
the types with a JSON form of their own (Time, MicroTime, Quantity, IntOrString, FieldsV1,
RawExtension) written as strings, numbers or embedded JSON.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from localcluster.api.protobuf._wire import FIXED32, FIXED64, LENGTH, VARINT, WireError, fields, read_varint, signed

MAGIC = b"k8s\x00"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
#: Go's zero time.Time as Unix seconds: a Time that was never set.
_ZERO_TIME = -62135596800
_INTEGERS = {"int32": 32, "int64": 64, "uint32": 0, "uint64": 0}
#: Kinds of meta.k8s.io that any group version carries (client-go registers them in every one).
_META_KINDS = ("DeleteOptions", "Status")


class ProtobufError(ValueError):
    """A body that is not a well-formed Kubernetes protobuf object."""


class UnsupportedKind(ProtobufError):
    """A well-formed envelope around a kind this server does not read as protobuf."""


class Field(NamedTuple):
    number: int
    proto_name: str
    json_name: str  # "" for a struct inlined into its parent's JSON
    type: str
    repeated: bool
    pointer: bool
    omitempty: bool


class MessageTable:
    """Fields by message name and number, loaded from messages.json."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.lists = frozenset(document["lists"])
        self.messages: dict[str, dict[int, Field]] = {
            name: {
                number: Field(number, proto, json_name, kind, "r" in flags, "p" in flags, "o" in flags)
                for number, proto, json_name, kind, flags in rows
            }
            for name, rows in document["messages"].items()
        }

    def message_of(self, api_version: str, kind: str) -> str | None:
        """The proto message of a kind: k8s.io.api.<first label of the group, or core>.<version>.<Kind>."""
        group, _, version = api_version.rpartition("/")
        if kind in _META_KINDS:
            name = f"{_META}.{kind}"
        else:
            name = f"k8s.io.api.{group.split('.', 1)[0] or 'core'}.{version}.{kind}"
        return name if name in self.messages else None


@cache
def table() -> MessageTable:
    text = resources.files("localcluster.api.protobuf").joinpath("messages.json").read_text()
    return MessageTable(json.loads(text))


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON form of an enveloped protobuf object, with its apiVersion and kind; ProtobufError if unreadable."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic number k8s\\x00")
    messages = table()
    try:
        envelope = _raw_fields(messages, _UNKNOWN, body[len(MAGIC) :])
        type_meta = _raw_fields(messages, "k8s.io.apimachinery.pkg.runtime.TypeMeta", _bytes(envelope, "typeMeta"))
        api_version, kind = _text(_bytes(type_meta, "apiVersion")), _text(_bytes(type_meta, "kind"))
        encoding, raw = _text(_bytes(envelope, "contentEncoding")), _bytes(envelope, "raw")
    except WireError as exc:
        raise ProtobufError(f"the protobuf envelope could not be read: {exc}") from None
    if encoding:
        raise UnsupportedKind(f"content encoding {encoding!r} is not supported")
    message = messages.message_of(api_version, kind)
    if message is None:
        raise UnsupportedKind(
            f"{kind or 'an object without a kind'} ({api_version or 'no apiVersion'}) is not a kind localcluster "
            "reads as protobuf; send it as JSON or YAML"
        )
    try:
        decoded = _message(messages, message, raw)
    except WireError as exc:
        raise ProtobufError(f"the {kind} in the protobuf body could not be read: {exc}") from None
    return {"kind": kind, "apiVersion": api_version, **decoded}


def _raw_fields(messages: MessageTable, name: str, data: bytes) -> dict[str, Any]:
    """A message's fields by proto name, as raw wire values (the last occurrence wins, as for scalars)."""
    by_number = messages.messages[name]
    return {by_number[n].proto_name: v for n, _, v in fields(data) if n in by_number}


def _bytes(raw: dict[str, Any], name: str) -> bytes:
    """A length-delimited field of `_raw_fields` (absent: empty)."""
    value = raw.get(name, b"")
    if not isinstance(value, bytes):
        raise WireError(f"{name} is not length-delimited")
    return value


def _int(raw: dict[str, Any], name: str, bits: int = 64) -> int:
    """A varint field of `_raw_fields` as a signed integer (absent: 0)."""
    value = raw.get(name, 0)
    if not isinstance(value, int):
        raise WireError(f"{name} is not a varint")
    return signed(value, bits)


def _text(value: Any) -> str:
    if not isinstance(value, bytes):
        raise WireError("a string field is not length-delimited")
    return value.decode("utf-8", errors="replace")  # Go's JSON encoder also replaces invalid UTF-8


def _message(messages: MessageTable, name: str, data: bytes) -> Any:
    """A message as its JSON value (usually an object; special types become strings, numbers or arrays)."""
    special = _SPECIAL.get(name)
    if special is not None:
        return special(messages, data)
    if name in messages.lists:
        return _list_of(messages, name, data)
    by_number = messages.messages[name]
    values: dict[int, Any] = {}
    for number, wire_type, raw in fields(data):
        field = by_number.get(number)
        if field is None:
            continue  # unknown fields are skipped, as generated Go code does
        if field.type.startswith("map:"):
            key, value = _map_entry(messages, field.type, raw)
            values.setdefault(number, {})[key] = value
        elif field.repeated:
            values.setdefault(number, []).extend(_repeated(messages, field.type, wire_type, raw))
        else:
            values[number] = _value(messages, field.type, wire_type, raw)
    obj: dict[str, Any] = {}
    for number, field in by_number.items():
        if number not in values:
            continue
        value = values[number]
        if value is None or (field.omitempty and not field.pointer and _is_zero(value)):
            continue
        if field.json_name:
            obj[field.json_name] = value
        elif isinstance(value, dict):
            obj.update(value)
    return obj


def _is_zero(value: Any) -> bool:
    """What encoding/json's omitempty leaves out: false, 0, "" (structs are never empty to it)."""
    return value is False or value == "" or (type(value) in (int, float) and value == 0)


def _value(messages: MessageTable, field_type: str, wire_type: int, raw: int | bytes) -> Any:
    if field_type in _INTEGERS:
        if wire_type != VARINT:
            raise WireError(f"an {field_type} field is not a varint")
        assert isinstance(raw, int)
        bits = _INTEGERS[field_type]
        return signed(raw, bits) if bits else raw
    if field_type == "bool":
        if wire_type != VARINT:
            raise WireError("a bool field is not a varint")
        return bool(raw)
    if field_type == "double":
        if wire_type != FIXED64:
            raise WireError("a double field is not fixed64")
        assert isinstance(raw, int)
        return struct.unpack("<d", raw.to_bytes(8, "little"))[0]
    if field_type == "float":
        if wire_type != FIXED32:
            raise WireError("a float field is not fixed32")
        assert isinstance(raw, int)
        return struct.unpack("<f", raw.to_bytes(4, "little"))[0]
    if wire_type != LENGTH:
        raise WireError(f"a {field_type} field is not length-delimited")
    assert isinstance(raw, bytes)
    if field_type == "string":
        return _text(raw)
    if field_type == "bytes":
        return base64.b64encode(raw).decode("ascii")  # []byte marshals as standard base64
    if field_type in messages.messages:
        return _message(messages, field_type, raw)
    raise WireError(f"unknown field type {field_type}")


def _repeated(messages: MessageTable, field_type: str, wire_type: int, raw: int | bytes) -> list[Any]:
    """One occurrence of a repeated field: one element, or several when numbers come packed."""
    if wire_type == LENGTH and (field_type in _INTEGERS or field_type == "bool"):
        assert isinstance(raw, bytes)
        elements, position = [], 0
        while position < len(raw):
            number, position = read_varint(raw, position)
            elements.append(_value(messages, field_type, VARINT, number))
        return elements
    return [_value(messages, field_type, wire_type, raw)]


def _map_entry(messages: MessageTable, field_type: str, raw: int | bytes) -> tuple[str, Any]:
    """A map entry is a message of key (1) and value (2); JSON object keys are strings."""
    if not isinstance(raw, bytes):
        raise WireError("a map entry is not length-delimited")
    _, key_type, value_type = field_type.split(":")
    key: Any = "" if key_type == "string" else 0
    value: Any = None
    for number, wire_type, item in fields(raw):
        if number == 1:
            key = _value(messages, key_type, wire_type, item)
        elif number == 2:
            value = _value(messages, value_type, wire_type, item)
    if value is None:  # an absent value is the zero value of its type
        value = (
            _value(messages, value_type, LENGTH, b"") if "." in value_type or value_type in ("string", "bytes") else 0
        )
    return str(key), value


def _list_of(messages: MessageTable, name: str, data: bytes) -> list[Any]:
    """A message wrapping a Go slice type (`ExtraValue`): its one repeated field is the JSON array."""
    [field] = messages.messages[name].values()
    items: list[Any] = []
    for number, wire_type, raw in fields(data):
        if number == field.number:
            items.extend(_repeated(messages, field.type, wire_type, raw))
    return items


# The types whose Go code writes a JSON form of their own.


def _time(messages: MessageTable, data: bytes) -> str | None:
    """metav1.Time: RFC 3339 in seconds; an empty message is the zero time, which marshals as null."""
    raw = _raw_fields(messages, f"{_META}.Time", data)
    seconds = _int(raw, "seconds")
    if not data or seconds == _ZERO_TIME:
        return None
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(messages: MessageTable, data: bytes) -> str | None:
    """metav1.MicroTime: RFC 3339 with microseconds."""
    raw = _raw_fields(messages, f"{_META}.MicroTime", data)
    seconds = _int(raw, "seconds")
    if not data or seconds == _ZERO_TIME:
        return None
    micros = _int(raw, "nanos", 32) // 1000 % 1_000_000
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def _utc(seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise WireError(f"{seconds} seconds is not a time") from None


def _quantity(messages: MessageTable, data: bytes) -> str:
    raw = _raw_fields(messages, "k8s.io.apimachinery.pkg.api.resource.Quantity", data)
    return _text(_bytes(raw, "string"))


def _int_or_string(messages: MessageTable, data: bytes) -> int | str:
    """intstr.IntOrString: type 0 is the int, type 1 the string."""
    raw = _raw_fields(messages, "k8s.io.apimachinery.pkg.util.intstr.IntOrString", data)
    if _int(raw, "type") == 1:
        return _text(_bytes(raw, "strVal"))
    return _int(raw, "intVal", 32)


def _embedded_json(name: str, field: str) -> Any:
    def decode(messages: MessageTable, data: bytes) -> Any:
        raw = _bytes(_raw_fields(messages, name, data), field)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise WireError(f"{name.rpartition('.')[2]} does not hold JSON: {exc}") from None

    return decode


_SPECIAL = {
    f"{_META}.Time": _time,
    f"{_META}.MicroTime": _micro_time,
    f"{_META}.FieldsV1": _embedded_json(f"{_META}.FieldsV1", "Raw"),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _embedded_json(
        "k8s.io.apimachinery.pkg.runtime.RawExtension", "raw"
    ),
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _quantity,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
}
