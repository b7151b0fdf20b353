"""protobuf's wire format, read and written by hand where protobuf's Python objects cost too much.

Readers take a `memoryview` of a message and return payloads as views of it (no copy).
Malformed input raises `ValueError`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_UINT64 = 1 << 64
_INT64_MAX = (1 << 63) - 1


class Field(NamedTuple):
    """One occurrence of a field in a message."""

    number: int
    wire_type: int
    value: Any  # int for varints, a view of the payload otherwise
    start: int  # where the field (its key) starts in the message
    end: int


def fields(data: memoryview, start: int = 0, end: int | None = None) -> list[Field]:
    """Every field of the message in `data[start:end]`, in order (offsets are into `data`)."""
    found: list[Field] = []
    offset, end = start, len(data) if end is None else end
    while offset < end:
        field = field_at(data, offset, end)
        found.append(field)
        offset = field.end
    return found


def field_at(data: memoryview, offset: int, end: int | None = None) -> Field:
    """The field whose key starts at `offset`, in a message that ends at `end` (default: the
    end of `data`)."""
    start, end = offset, len(data) if end is None else end
    key, offset = varint(data, offset, end)
    number, wire_type = key >> 3, key & 7
    if number == 0:
        raise ValueError("malformed message: field number 0")
    if wire_type == VARINT:
        value, offset = varint(data, offset, end)
        return Field(number, wire_type, value, start, offset)
    if wire_type == LENGTH:
        size, offset = varint(data, offset, end)
    elif wire_type in (FIXED64, FIXED32):
        size = 8 if wire_type == FIXED64 else 4
    else:
        raise ValueError(f"malformed message: unsupported wire type {wire_type}")
    if offset + size > end:
        raise ValueError("malformed message: a field runs past the end")
    return Field(number, wire_type, data[offset : offset + size], start, offset + size)


def payload_start(field: Field) -> int:
    """Where a length-delimited field's payload starts (in the message it was read from)."""
    return field.end - len(field.value)


def varint(data: memoryview, offset: int, end: int | None = None) -> tuple[int, int]:
    """The varint at `offset` (as an unsigned 64-bit number) and the offset after it; it must
    end before `end` (default: the end of `data`)."""
    end = len(data) if end is None else end
    value = shift = 0
    while shift < 70:
        if offset >= end:
            raise ValueError("malformed message: truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & (_UINT64 - 1), offset
        shift += 7
    raise ValueError("malformed message: varint longer than 10 bytes")


def int64s(wire_type: int, value: Any) -> list[int]:
    """The values of a repeated int64 field occurrence, packed or not."""
    if wire_type == VARINT:
        return [signed(value)]
    if wire_type != LENGTH:
        raise ValueError("malformed message: repeated int64 field of the wrong wire type")
    numbers, offset = [], 0
    while offset < len(value):
        number, offset = varint(value, offset)
        numbers.append(signed(number))
    return numbers


def signed(number: int) -> int:
    """An unsigned 64-bit varint read as int64."""
    return number - _UINT64 if number > _INT64_MAX else number


def text(data: memoryview) -> str:
    """A `string` field's value (`UnicodeDecodeError`, a `ValueError`, when not UTF-8)."""
    return bytes(data).decode("utf-8")


# ------------------------------------------------------------------------------ writing


def encode_varint(number: int) -> bytes:
    """`number` (0 <= number < 2**64) as a varint."""
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field `number` holding `payload` (a message, string or bytes), key and length first."""
    return encode_varint(number << 3 | LENGTH) + encode_varint(len(payload)) + payload
