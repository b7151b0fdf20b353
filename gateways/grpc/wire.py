"""Decoding gRPC requests without protobuf objects per instance, and large ones without copying
their tensors.

A `PredictRequest` whose instances share one layout is read straight into columns
(`msq.gateways.grpc.ms_columns`); the others are decoded instance by instance, as follows.
protobuf's Python runtime copies a message's bytes when it parses it and again each time a
`bytes` field is read. For messages of `ZERO_COPY_MIN_BYTES` and more (a `PredictRequest`
also needs instances of `ZERO_COPY_MIN_INSTANCE_BYTES` on average), these deserializers read
the protobuf wire format themselves and keep tensor bytes as `memoryview` slices of the
received message, so they reach the broker's frames without a copy. Smaller messages are
parsed by protobuf, which is faster there; their tensors are copied into the broker message
anyway (`FRAME_THRESHOLD`).

- MindSpore Serving's `PredictRequest` is decoded whole by `parse_zero_copy`, following
  protobuf's rules (unknown fields skipped, packed or unpacked repeated scalars, repeated
  singular messages merged, the last of a oneof wins, the last map entry of a key wins).
- A V2 `ModelInferRequest` keeps its `raw_input_contents` (field 7) as views; protobuf parses the
  rest of the message.

Malformed input raises `ValueError` (or protobuf's `DecodeError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msq.gateways.grpc.ms_columns import read_uniform
from msq.gateways.grpc.protowire import LENGTH, VARINT, fields, int64s, signed, text
from msq.proto import grpc_predict_v2_pb2 as v2
from msq.proto import ms_service_pb2 as ms
from msq.proto.codec import FRAME_THRESHOLD
from msq.proto.messages import Columns

#: Messages at least this large are decoded without copying their tensors...
ZERO_COPY_MIN_BYTES = FRAME_THRESHOLD
#: ... and a `PredictRequest` only when its instances average at least this many bytes.
ZERO_COPY_MIN_INSTANCE_BYTES = 256 * 1024

_RAW_INPUT_CONTENTS = v2.ModelInferRequest.RAW_INPUT_CONTENTS_FIELD_NUMBER


# ------------------------------------------------------------------------ MindSpore Serving


@dataclass(slots=True)
class RawTensor:
    """A `Tensor` message: its fields as sent (data as views of the message)."""

    dtype: int = 0
    dims: list[int] = field(default_factory=list)
    data: bytes | memoryview = b""
    bytes_val: list[bytes | memoryview] = field(default_factory=list)
    shared_memory: bool = False  # `shm_data` was the oneof's last value


@dataclass(slots=True)
class RawPredictRequest:
    """A `PredictRequest`: the servable spec and every instance's tensors by name, or (when
    every instance has one layout) all instances as `columns`, already checked."""

    name: str = ""
    method_name: str = ""
    version_number: int = 0
    instances: list[dict[str, RawTensor]] = field(default_factory=list)
    legacy_instances: list[dict[str, RawTensor]] = field(default_factory=list)
    columns: Columns | None = None


def parse_predict_request(message: bytes) -> RawPredictRequest:
    """Decode a serialized `PredictRequest` (grpcio's request deserializer).

    Instances of one layout become columns. Otherwise decoding here costs ~10 µs of Python per
    instance, protobuf's copies ~40 µs per MB: the zero-copy decoder pays off for messages
    whose instances are large on average.
    """
    uniform = read_uniform(message)
    if uniform is not None:
        request = RawPredictRequest(columns=uniform.columns)
        try:
            for spec in uniform.specs:
                _parse_spec(spec, request)
        except ValueError:  # protobuf's own parser says why
            return parse_with_protobuf(message)
        return request
    if len(message) >= ZERO_COPY_MIN_BYTES:
        top_level = fields(memoryview(message))
        instances = sum(1 for f in top_level if f.number in (2, 3))
        if len(message) >= ZERO_COPY_MIN_INSTANCE_BYTES * max(1, instances):
            return parse_zero_copy(message)
    return parse_with_protobuf(message)


def parse_with_protobuf(message: bytes) -> RawPredictRequest:
    """Decode a serialized `PredictRequest` instance by instance with protobuf's parser."""
    request = ms.PredictRequest.FromString(message)
    spec = request.servable_spec
    return RawPredictRequest(
        spec.name,
        spec.method_name,
        spec.version_number,
        [_items(instance) for instance in request.instances],
        [_items(instance) for instance in request.legacy_instances],
    )


def _items(instance: ms.Instance) -> dict[str, RawTensor]:
    return {
        name: RawTensor(
            tensor.dtype,
            list(tensor.shape.dims),
            tensor.data,
            list(tensor.bytes_val),
            tensor.WhichOneof("tensor_data") == "shm_data",
        )
        for name, tensor in instance.items.items()
    }


def parse_zero_copy(message: bytes) -> RawPredictRequest:
    """Decode a serialized `PredictRequest`, tensor data as views of `message`."""
    request = RawPredictRequest()
    for f in fields(memoryview(message)):
        if f.number == 1 and f.wire_type == LENGTH:
            _parse_spec(f.value, request)
        elif f.number in (2, 3) and f.wire_type == LENGTH:
            instances = request.instances if f.number == 2 else request.legacy_instances
            instances.append(_parse_instance(f.value))
    return request


def _parse_spec(data: memoryview, request: RawPredictRequest) -> None:
    for f in fields(data):
        if f.number == 1 and f.wire_type == LENGTH:
            request.name = text(f.value)
        elif f.number == 2 and f.wire_type == LENGTH:
            request.method_name = text(f.value)
        elif f.number == 3 and f.wire_type == VARINT:
            request.version_number = f.value


def _parse_instance(data: memoryview) -> dict[str, RawTensor]:
    items: dict[str, RawTensor] = {}
    for f in fields(data):
        if f.number == 1 and f.wire_type == LENGTH:
            key, tensor = "", RawTensor()
            for entry in fields(f.value):
                if entry.number == 1 and entry.wire_type == LENGTH:
                    key = text(entry.value)
                elif entry.number == 2 and entry.wire_type == LENGTH:
                    _parse_tensor(entry.value, tensor)
            items[key] = tensor
    return items


def _parse_tensor(data: memoryview, tensor: RawTensor) -> None:
    for f in fields(data):
        if f.number == 1 and f.wire_type == LENGTH:
            for dims in fields(f.value):
                if dims.number == 1:
                    tensor.dims.extend(int64s(dims.wire_type, dims.value))
        elif f.number == 2 and f.wire_type == VARINT:
            tensor.dtype = signed(f.value)
        elif f.number == 3 and f.wire_type == LENGTH:
            tensor.data, tensor.shared_memory = f.value, False
        elif f.number == 4 and f.wire_type == LENGTH:
            tensor.bytes_val.append(f.value)
        elif f.number == 5 and f.wire_type == LENGTH:
            tensor.data, tensor.shared_memory = b"", True


# ---------------------------------------------------------------------------------------- V2


@dataclass(frozen=True, slots=True)
class SplitInferRequest:
    """A `ModelInferRequest` whose `raw_input_contents` are kept apart, as views."""

    message: v2.ModelInferRequest  # without raw_input_contents when they were split off
    raw_inputs: list[bytes | memoryview]


def parse_infer_request(message: bytes) -> SplitInferRequest:
    """Decode a serialized `ModelInferRequest` (grpcio's request deserializer)."""
    if len(message) < ZERO_COPY_MIN_BYTES:
        request = v2.ModelInferRequest.FromString(message)
        return SplitInferRequest(request, list(request.raw_input_contents))
    view = memoryview(message)
    rest: list[memoryview] = []
    raw_inputs: list[bytes | memoryview] = []
    for f in fields(view):
        if f.number == _RAW_INPUT_CONTENTS and f.wire_type == LENGTH:
            raw_inputs.append(f.value)
        else:
            rest.append(view[f.start : f.end])
    return SplitInferRequest(v2.ModelInferRequest.FromString(b"".join(rest)), raw_inputs)
