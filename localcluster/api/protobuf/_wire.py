"""The protobuf wire format: varints, and fields as (number, wire type, value).

It is all of protobuf that Kubernetes' messages use (no groups), as the encoding guide describes it:
https://protobuf.dev/programming-guides/encoding/. What the fields mean is the business of the
message tables that use it.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_UINT64 = 1 << 64


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    """The varint at `position` and the position after it."""
    value = shift = 0
    while True:
        if position >= len(data):
            raise WireError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Each field of a message in wire order: number, wire type, and an int (varint, fixed) or bytes."""
    position, end = 0, len(data)
    while position < end:
        key, position = read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        value: int | bytes
        if wire_type == VARINT:
            value, position = read_varint(data, position)
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if position + size > end:
                raise WireError("truncated fixed-size field")
            value = int.from_bytes(data[position : position + size], "little")
            position += size
        elif wire_type == LENGTH:
            size, position = read_varint(data, position)
            if position + size > end:
                raise WireError(f"field {number} claims {size} bytes, {end - position} remain")
            value = bytes(data[position : position + size])
            position += size
        else:
            raise WireError(f"wire type {wire_type} (groups are not used by Kubernetes)")
        yield number, wire_type, value


def signed(value: int, bits: int = 64) -> int:
    """A varint as the two's-complement integer of `bits` bits it encodes (int32 and int64 fields)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def varint(value: int) -> bytes:
    """A varint; negative numbers as their 64-bit two's complement, as int32 and int64 fields write them."""
    if value < 0:
        value += _UINT64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return key(number, LENGTH) + varint(len(payload)) + payload
