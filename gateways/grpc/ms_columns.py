"""MindSpore Serving's `PredictRequest` read straight into columns, and `PredictReply` written
straight from them, when every instance has one layout.

Instances that share names, dtypes and shapes (a client sending a batch of like instances)
serialize to the same bytes except their tensor data. `read_uniform` parses the first instance
field, compares the bytes outside its data regions with the next ones' in one NumPy pass, and
when they match takes each input's column as those regions stacked: one copy, no protobuf
object per instance. Anything else returns None so that the request is decoded instance by
instance (`msq.gateways.grpc.wire`, which gives the per-instance errors): fewer than `MIN_ROWS`
instances, instances of several layouts, STRING or BYTES tensors, invalid tensors, unknown or
repeated fields, `output_buffers`, legacy instances.

`write_reply` is the reverse for an answer without failures: each column layout's reply
instance is laid out once and filled per row with NumPy, giving the bytes protobuf would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from msq.gateways.grpc.protowire import (
    LENGTH,
    VARINT,
    Field,
    encode_varint,
    field_at,
    fields,
    int64s,
    length_delimited,
    payload_start,
    signed,
    text,
)
from msq.proto.codec import BYTES, STRING, CodecError, WireTensor
from msq.proto.columns import Outcomes, bytes_view
from msq.proto.messages import Columns
from msq.proto.ms_tensors import MS_OF_DTYPE, wire_tensor

#: `PredictRequest` and `PredictReply` field numbers.
_SPEC, _INSTANCES, _REPLY_INSTANCES = 1, 2, 3
#: Fewer instances than this are left to protobuf, which is faster for them (~10 µs against
#: ~20-30 µs for one instance; even at about 5, `python -m msq.benchmarks.gateway_codec`).
MIN_ROWS = 5


@dataclass(frozen=True, slots=True)
class UniformRequest:
    """A `PredictRequest` whose instances share one layout: its `servable_spec` occurrences
    (views, in order: protobuf merges them) and its instances as columns."""

    specs: list[memoryview]
    columns: Columns


class _Input(NamedTuple):
    """One input of the first instance; its data at [start, stop) of the instance field."""

    name: str
    dtype: str
    dims: tuple[int, ...]
    start: int
    stop: int


def read_uniform(message: bytes) -> UniformRequest | None:
    """The request's instances as columns, or None unless they all share one layout."""
    view = memoryview(message)
    specs: list[memoryview] = []
    columns: Columns | None = None
    offset = 0
    try:
        while offset < len(view):
            field = field_at(view, offset)
            if field.wire_type != LENGTH or field.number not in (_SPEC, _INSTANCES):
                return None
            offset = field.end
            if field.number == _SPEC:
                specs.append(field.value)
                continue
            stride = field.end - field.start
            if columns is not None or (len(view) - field.start) // stride < MIN_ROWS:
                return None  # a second run of instances, or too few instances
            inputs = _instance_inputs(view, field)
            if inputs is None:
                return None
            count = _like_rows(message, field.start, stride, inputs)
            if count < MIN_ROWS:
                return None
            columns = _columns(message, field.start, stride, count, inputs)
            offset = field.start + count * stride
    except ValueError:  # malformed: the instance-by-instance decoder says how
        return None
    return None if columns is None else UniformRequest(specs, columns)


def _instance_inputs(view: memoryview, instance: Field) -> list[_Input] | None:
    """The inputs of an `Instance` field whose entries are plain numeric tensors, each name
    once; None otherwise. Data offsets are relative to the field's start."""
    inputs: list[_Input] = []
    for entry in fields(view, payload_start(instance), instance.end):
        if entry.number != 1 or entry.wire_type != LENGTH:
            return None
        key = tensor = None
        for part in fields(view, payload_start(entry), entry.end):
            if part.wire_type != LENGTH or part.number not in (1, 2):
                return None
            if part.number == 1 and key is None:
                key = text(part.value)
            elif part.number == 2 and tensor is None:
                tensor = part
            else:
                return None
        if key is None or tensor is None or any(known.name == key for known in inputs):
            return None
        found = _tensor_input(view, key, tensor, instance.start)
        if found is None:
            return None
        inputs.append(found)
    return inputs or None


def _tensor_input(view: memoryview, name: str, tensor: Field, origin: int) -> _Input | None:
    """A `Tensor` field of exactly a shape, a dtype and numeric data, each once, that
    `wire_tensor` accepts; its data offsets counted from `origin` in `view`."""
    dtype: int | None = None
    dims: list[int] | None = None
    data: Field | None = None
    for part in fields(view, payload_start(tensor), tensor.end):
        if part.number == 1 and part.wire_type == LENGTH and dims is None:
            dims = []
            for dim in fields(view, payload_start(part), part.end):
                if dim.number != 1:
                    return None
                dims.extend(int64s(dim.wire_type, dim.value))
        elif part.number == 2 and part.wire_type == VARINT and dtype is None:
            dtype = signed(part.value)
        elif part.number == 3 and part.wire_type == LENGTH and data is None:
            data = part
        else:
            return None
    if dtype is None or data is None:
        return None
    try:
        wire = wire_tensor(dtype, dims or (), data.value, ())
    except CodecError:
        return None
    if wire.dtype in (STRING, BYTES):
        return None
    return _Input(name, wire.dtype, wire.shape, payload_start(data) - origin, data.end - origin)


def _skeleton(stride: int, inputs: list[_Input]) -> list[tuple[int, int]]:
    """The byte ranges of an instance field outside its inputs' data."""
    ranges, edge = [], 0
    for item in sorted(inputs, key=lambda item: item.start):
        ranges.append((edge, item.start))
        edge = item.stop
    ranges.append((edge, stride))
    return [(start, stop) for start, stop in ranges if stop > start]


def _like_rows(message: bytes, start: int, stride: int, inputs: list[_Input]) -> int:
    """How many consecutive fields of `stride` bytes from `start` are byte for byte the field
    there outside its data (each is then an instance of the same layout: every key and length
    of the wire format lies outside the data)."""
    rows = (len(message) - start) // stride
    block = np.frombuffer(message, np.uint8, rows * stride, start).reshape(rows, stride)
    like = np.ones(rows, dtype=bool)
    for low, high in _skeleton(stride, inputs):
        like &= (block[:, low:high] == block[0, low:high]).all(axis=1)
    return rows if bool(like.all()) else int(like.argmin())


def _columns(message: bytes, start: int, stride: int, count: int, inputs: list[_Input]) -> Columns:
    """`count` instances from `start` as columns: one copy per input."""
    tensors: dict[str, WireTensor] = {}
    block = np.frombuffer(message, np.uint8, count * stride, start).reshape(count, stride)
    for item in inputs:
        column = block[:, item.start : item.stop].tobytes()
        tensors[item.name] = WireTensor(item.dtype, (count, *item.dims), column)
    return Columns(count, tensors)


# ------------------------------------------------------------------------------ replies


class _RowLayout(NamedTuple):
    """A reply instance field for one row of a `Columns`: its byte ranges and what fills
    them (fixed bytes, or a row of the named output)."""

    stride: int
    fixed: list[tuple[int, int, np.ndarray]]
    outputs: list[tuple[int, int, WireTensor]]


def write_reply(
    name: str, method_name: str, version_number: int, outcomes: Outcomes
) -> bytes | None:
    """The serialized `PredictReply` of outcomes without failures (its `servable_spec` as
    given), or None when a row failed, an output is STRING or BYTES, or there are fewer than
    `MIN_ROWS` rows."""
    if outcomes.failures or outcomes.count < MIN_ROWS:
        return None
    layouts = []
    for part in outcomes.columns:
        layout = _row_layout(part)
        if layout is None:
            return None
        layouts.append((part.count, layout))
    spec = length_delimited(_SPEC, _spec(name, method_name, version_number))
    out = np.empty(len(spec) + sum(count * layout.stride for count, layout in layouts), np.uint8)
    out[: len(spec)] = np.frombuffer(spec, np.uint8)
    at = len(spec)
    for count, layout in layouts:
        rows = out[at : at + count * layout.stride].reshape(count, layout.stride)
        for low, high, fixed in layout.fixed:
            rows[:, low:high] = fixed
        for low, high, tensor in layout.outputs:
            rows[:, low:high] = np.frombuffer(bytes_view(tensor.data), np.uint8).reshape(
                count, high - low
            )
        at += count * layout.stride
    return out.tobytes()


def _spec(name: str, method_name: str, version_number: int) -> bytes:
    """A `ServableSpec`'s fields (proto3: defaults are not written)."""
    spec = b""
    if name:
        spec += length_delimited(1, name.encode("utf-8"))
    if method_name:
        spec += length_delimited(2, method_name.encode("utf-8"))
    if version_number:
        spec += encode_varint(3 << 3 | VARINT) + encode_varint(version_number)
    return spec


def _row_layout(part: Columns) -> _RowLayout | None:
    """How one row of `part` is written as a reply `Instance` field (None: a STRING or BYTES
    output, which `fill_reply` writes)."""
    heads: list[tuple[bytes, int, WireTensor]] = []  # each entry's bytes before its data
    for name, tensor in part.tensors.items():
        code = MS_OF_DTYPE.get(tensor.dtype)
        dims = tensor.shape[1:]
        if code is None or tensor.dtype in (STRING, BYTES) or min(dims, default=0) < 0:
            return None
        row = tensor.nbytes // part.count
        packed = b"".join(encode_varint(dim) for dim in dims)
        shape = length_delimited(1, length_delimited(1, packed) if dims else b"")
        head = shape + encode_varint(2 << 3 | VARINT) + encode_varint(code)
        head += encode_varint(3 << 3 | LENGTH) + encode_varint(row)
        key = length_delimited(1, name.encode("utf-8"))
        value_key = encode_varint(2 << 3 | LENGTH) + encode_varint(len(head) + row)
        entry = len(key) + len(value_key) + len(head) + row
        heads.append(
            (
                encode_varint(1 << 3 | LENGTH) + encode_varint(entry) + key + value_key + head,
                row,
                tensor,
            )
        )
    body = sum(len(head) + row for head, row, _ in heads)
    prefix = encode_varint(_REPLY_INSTANCES << 3 | LENGTH) + encode_varint(body)
    fixed: list[tuple[int, int, np.ndarray]] = []
    outputs: list[tuple[int, int, WireTensor]] = []
    at, pending = 0, prefix
    for head, row, tensor in heads:
        pending += head
        fixed.append((at, at + len(pending), np.frombuffer(pending, np.uint8)))
        at += len(pending)
        outputs.append((at, at + row, tensor))
        at += row
        pending = b""
    return _RowLayout(at, fixed, outputs)
