"""Serialization of internal messages, derived from their declarations in `msq.proto.messages`.

Frame 0 is the msgpack array `[PROTOCOL_VERSION, command, *fields]`: the command is the
message's class name and the fields follow the dataclass in declaration order. Nested values
follow their declared types: a dataclass is the array of its fields, an enum its value, a tuple
or list an array, a dict a map. A tensor (`WireTensor`) is `[dtype, shape, data]`, where `data`
is the raw bytes inline (small tensors) or the index of a following frame (tensors of
`FRAME_THRESHOLD` bytes and more, sent without copying). Decoding checks every value against
its declared type, never copies frame bytes (tensors keep a view of their frame) and never
executes anything: nothing is pickled.

A new field (or a new nested dataclass) needs no change here: the converters are built from
the type hints the first time a class is seen.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from typing_extensions import Buffer

from msq.proto.codec import FRAME_THRESHOLD, WireTensor
from msq.proto.messages import PROTOCOL_VERSION, Message


class WireError(ValueError):
    """A malformed message; `request_id` is set when the message named one."""

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class _MalformedError(Exception):
    """A value that does not match its declared type; `where` is the path to it."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.where: list[str] = []


#: Encodes a value; tensor frames are appended to the list.
Encode = Callable[[Any, list[Buffer]], Any]
#: Decodes a plain value; tensor frame indices refer to the sequence of frames.
Decode = Callable[[Any, Sequence[Buffer]], Any]


def _is_int(raw: object) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool)


# ---------------------------------------------------------------------------------- tensors


def _encode_tensor(tensor: WireTensor, frames: list[Buffer]) -> list[Any]:
    dtype, shape, data = tensor
    if tensor.nbytes < FRAME_THRESHOLD:
        return [dtype, shape, data if type(data) is bytes else bytes(data)]
    frames.append(data)
    return [dtype, shape, len(frames)]


_new_tensor = WireTensor._make


def _decode_tensor(raw: Any, frames: Sequence[Buffer]) -> WireTensor:
    # msgpack gives exact types: `type(x) is int` also keeps booleans out.
    if type(raw) is not list or len(raw) != 3:
        raise _MalformedError("a tensor must be [dtype, shape, data]")
    dtype, shape, data = raw
    if type(dtype) is not str or type(shape) is not list:
        raise _MalformedError("a tensor's dtype must be a string and its shape a list")
    for dim in shape:
        if type(dim) is not int:
            raise _MalformedError(f"a tensor's shape must hold integers, not {shape}")
    if type(data) is not bytes:
        if type(data) is not int:
            raise _MalformedError("a tensor's data must be bytes or a frame index")
        if not 1 <= data < len(frames):
            raise _MalformedError(f"tensor frame {data} does not exist")
        data = frames[data]
    return _new_tensor((dtype, tuple(shape), data))


def _encode_instance(instance: dict[str, WireTensor], frames: list[Buffer]) -> dict[str, Any]:
    return {name: _encode_tensor(tensor, frames) for name, tensor in instance.items()}


def _decode_instance(raw: Any, frames: Sequence[Buffer]) -> dict[str, WireTensor]:
    if type(raw) is not dict:
        raise _MalformedError("an instance must map names to tensors")
    instance = {}
    for name, tensor in raw.items():
        if type(name) is not str:
            raise _MalformedError("an instance must map names to tensors")
        instance[name] = _decode_tensor(tensor, frames)
    return instance


# ---------------------------------------------------------------------------------- converters


class _Codec(typing.NamedTuple):
    """How one declared type travels: its converters and the msgpack kinds it decodes from."""

    encode: Encode
    decode: Decode
    #: The plain Python types a value of this type decodes from (used to pick a union member).
    raw_kinds: tuple[type, ...]


def _keep(value: Any, frames: list[Buffer]) -> Any:
    return value


def _scalar(kind: type) -> _Codec:
    if kind is float:

        def decode_float(raw: Any, frames: Sequence[Buffer]) -> float:
            if not isinstance(raw, int | float) or isinstance(raw, bool):
                raise _MalformedError(f"expected a number, not {type(raw).__name__}")
            return float(raw)

        return _Codec(_keep, decode_float, (float, int))

    def decode_scalar(raw: Any, frames: Sequence[Buffer]) -> Any:
        if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
            raise _MalformedError(f"expected {kind.__name__}, not {type(raw).__name__}")
        return raw

    return _Codec(_keep, decode_scalar, (kind,))


def _decode_any(raw: Any, frames: Sequence[Buffer]) -> Any:
    return raw


def _enum(kind: type[enum.Enum]) -> _Codec:
    def encode_enum(value: enum.Enum, frames: list[Buffer]) -> Any:
        return value.value

    def decode_enum(raw: Any, frames: Sequence[Buffer]) -> enum.Enum:
        try:
            return kind(raw)
        except (ValueError, TypeError):
            raise _MalformedError(f"unknown {kind.__name__} {raw!r}") from None

    raw_kinds = tuple({type(member.value) for member in kind})
    return _Codec(encode_enum, decode_enum, raw_kinds)


def _sequence(item: _Codec, build: type) -> _Codec:
    item_encode, item_decode = item.encode, item.decode

    def encode_sequence(value: Any, frames: list[Buffer]) -> list[Any]:
        return [item_encode(entry, frames) for entry in value]

    def decode_sequence(raw: Any, frames: Sequence[Buffer]) -> Any:
        if not isinstance(raw, list):
            raise _MalformedError(f"expected an array, not {type(raw).__name__}")
        decoded = []
        for index, entry in enumerate(raw):
            try:
                decoded.append(item_decode(entry, frames))
            except _MalformedError as exc:
                exc.where.append(f"[{index}]")
                raise
        return build(decoded)

    return _Codec(encode_sequence, decode_sequence, (list,))


def _mapping(value_codec: _Codec) -> _Codec:
    value_encode, value_decode = value_codec.encode, value_codec.decode

    def encode_mapping(value: dict[str, Any], frames: list[Buffer]) -> dict[str, Any]:
        return {key: value_encode(entry, frames) for key, entry in value.items()}

    def decode_mapping(raw: Any, frames: Sequence[Buffer]) -> dict[str, Any]:
        if not isinstance(raw, dict) or not all(isinstance(key, str) for key in raw):
            raise _MalformedError("expected a map with string keys")
        decoded = {}
        for key, entry in raw.items():
            try:
                decoded[key] = value_decode(entry, frames)
            except _MalformedError as exc:
                exc.where.append(f"[{key!r}]")
                raise
        return decoded

    return _Codec(encode_mapping, decode_mapping, (dict,))


def _union(members: tuple[Any, ...]) -> _Codec:
    """A union travels as its members do; a value's msgpack kind tells which member it is."""
    codecs = [_codec(member) for member in members]
    by_kind: dict[type, Decode] = {}
    for codec in codecs:
        for kind in codec.raw_kinds:
            if kind in by_kind:
                raise TypeError(f"union {members} has two members that travel as {kind.__name__}")
            by_kind[kind] = codec.decode
    encoders = [
        (_python_type(member), codec.encode) for member, codec in zip(members, codecs, strict=True)
    ]

    def encode_union(value: Any, frames: list[Buffer]) -> Any:
        for kind, encode in encoders:
            if isinstance(value, kind):
                return encode(value, frames)
        raise TypeError(f"{type(value).__name__} is not one of {members}")

    def decode_union(raw: Any, frames: Sequence[Buffer]) -> Any:
        decode = by_kind.get(type(raw))
        if decode is None:
            raise _MalformedError(f"unexpected {type(raw).__name__}")
        return decode(raw, frames)

    return _Codec(encode_union, decode_union, tuple(by_kind))


def _python_type(declared: Any) -> type | tuple[type, ...]:
    """The classes a value of a declared type is an instance of (for `isinstance`)."""
    if declared is None or declared is types.NoneType:
        return types.NoneType
    if declared is float:
        return (float, int)
    return typing.cast(type, typing.get_origin(declared) or declared)


def _dataclass(cls: type) -> _Codec:
    """A dataclass travels as the array of its fields in declaration order."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    codecs = [_codec(hints[name]) for name in names]
    encoders = [(name, codec.encode) for name, codec in zip(names, codecs, strict=True)]
    decoders = [(name, codec.decode) for name, codec in zip(names, codecs, strict=True)]
    title = cls.__name__

    def encode_dataclass(value: Any, frames: list[Buffer]) -> list[Any]:
        return [encode(getattr(value, name), frames) for name, encode in encoders]

    def decode_dataclass(raw: Any, frames: Sequence[Buffer]) -> Any:
        if not isinstance(raw, list) or len(raw) != len(decoders):
            raise _MalformedError(f"a {title} must be an array of {len(decoders)} fields {names}")
        values = []
        for (name, decode), entry in zip(decoders, raw, strict=True):
            try:
                values.append(decode(entry, frames))
            except _MalformedError as exc:
                exc.where.append(name)
                raise
        try:
            return cls(*values)
        except (TypeError, ValueError) as exc:
            raise _MalformedError(f"invalid {title}: {exc}") from None

    return _Codec(encode_dataclass, decode_dataclass, (list,))


@functools.cache
def _codec(declared: Any) -> _Codec:
    """The converters of a declared type (built once per type)."""
    origin = typing.get_origin(declared)
    arguments = typing.get_args(declared)
    if declared is WireTensor:
        return _Codec(_encode_tensor, _decode_tensor, (list,))
    if origin is dict and arguments == (str, WireTensor):
        return _Codec(_encode_instance, _decode_instance, (dict,))
    if declared is None or declared is types.NoneType:
        return _Codec(_keep, _scalar(types.NoneType).decode, (types.NoneType,))
    if declared is object:
        return _Codec(_keep, _decode_any, (object,))
    if origin in (types.UnionType, typing.Union):
        return _union(arguments)
    if origin is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
        return _sequence(_codec(arguments[0]), tuple)
    if origin is list:
        return _sequence(_codec(arguments[0]), list)
    if origin is dict and arguments[0] is str:
        return _mapping(_codec(arguments[1]))
    if isinstance(declared, type) and issubclass(declared, enum.Enum):
        return _enum(declared)
    if isinstance(declared, type) and dataclasses.is_dataclass(declared):
        return _dataclass(declared)
    if declared in (bool, int, float, str, bytes):
        return _scalar(declared)
    raise TypeError(f"msq.proto.wire cannot carry the type {declared!r}")


class _MessageCodec(typing.NamedTuple):
    """A message class, its codec and the position of its `request_id` field (None: none)."""

    cls: type
    codec: _Codec
    id_position: int | None


def _message_codec(cls: type) -> _MessageCodec:
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    id_position = names.index("request_id") if "request_id" in names else None
    return _MessageCodec(cls, _codec(cls), id_position)


_MESSAGES: dict[str, _MessageCodec] = {
    cls.__name__: _message_codec(cls) for cls in typing.get_args(Message)
}
_BY_CLASS: dict[type, _MessageCodec] = {entry.cls: entry for entry in _MESSAGES.values()}


# ---------------------------------------------------------------------------------- frames

#: msgspec's msgpack: faster than msgpack-python for the same bytes (thread-safe).
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()


def encode(message: Message) -> list[Buffer]:
    """Encode a message into frames: the header, then the large tensors' buffers."""
    frames: list[Buffer] = []
    fields = _BY_CLASS[type(message)].codec.encode(message, frames)
    header = _ENCODER.encode([PROTOCOL_VERSION, type(message).__name__, *fields])
    return [header, *frames]


def decode(frames: Sequence[Buffer]) -> Message:
    """Decode frames (header first) into a message; raise `WireError` if they are malformed.

    Tensor data stays a view of its frame: pass `zmq.Frame.buffer` memoryviews (or bytes).
    """
    if not frames:
        raise WireError("empty message")
    try:
        header = _DECODER.decode(frames[0])
    except (msgspec.MsgspecError, ValueError, TypeError, RecursionError) as exc:
        raise WireError(f"message header is not valid msgpack: {exc}") from None
    if not isinstance(header, list) or len(header) < 2:
        raise WireError("message header is not an array [version, command, ...]")
    version, command, *fields = header
    if version != PROTOCOL_VERSION:
        raise WireError(
            f"protocol version {version!r} is not supported (expected {PROTOCOL_VERSION})"
        )
    entry = _MESSAGES.get(command) if isinstance(command, str) else None
    if entry is None:
        raise WireError(f"unknown command {command!r}")
    codec, id_position = entry.codec, entry.id_position
    request_id = None
    if id_position is not None and id_position < len(fields) and _is_int(fields[id_position]):
        request_id = fields[id_position]
    try:
        return typing.cast(Message, codec.decode(fields, frames))
    except _MalformedError as exc:
        where = "".join(part if part[0] == "[" else f".{part}" for part in reversed(exc.where))
        at = f" field {where[1:]}:" if where else ""
        raise WireError(f"malformed {command} message:{at} {exc.problem}", request_id) from None
