"""MindSpore Serving wire compatibility, proven without msq's generated stubs.

Requests are encoded by hand from the field numbers of MindSpore Serving's ms_service.proto
(as old clients' protoc 3.x code wrote them) and replies decoded the same way — against the
stubs and against a real gateway (broker, `add` worker, msq-grpc-gateway processes).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from msq.proto import ms_service_pb2 as pb
from tests.gateways.grpc_processes import GrpcStack

MS_FLOAT32, MS_STRING = 11, 13
PREDICT = "/mindspore.serving.proto.MSService/Predict"
VARINT, LENGTH = 0, 2


# --------------------------------------------------------------- raw protobuf wire format


def varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | LENGTH) + varint(len(payload)) + payload


def integer(number: int, value: int) -> bytes:
    return varint(number << 3 | VARINT) + varint(value)


def tensor(
    dtype: int, dims: list[int], data: bytes = b"", bytes_val: tuple[bytes, ...] = ()
) -> bytes:
    packed_dims = b"".join(varint(dim) for dim in dims)
    out = field(1, field(1, packed_dims)) + integer(2, dtype)  # shape.dims packed, dtype
    if data:
        out += field(3, data)
    return out + b"".join(field(4, item) for item in bytes_val)


def instance(**items: bytes) -> bytes:
    """Instance.items is map<string, Tensor> = 1: one entry message (key 1, value 2) per item."""
    return b"".join(
        field(1, field(1, name.encode()) + field(2, value)) for name, value in items.items()
    )


def predict_request(
    name: str, method: str, instances: list[bytes], *, field_number: int = 2
) -> bytes:
    spec = field(1, name.encode()) + field(2, method.encode()) + integer(3, 0)
    return field(1, spec) + b"".join(field(field_number, item) for item in instances)


def parse(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of one message: ints for varints, bytes for the rest."""
    offset = 0
    while offset < len(data):
        key, offset = read_varint(data, offset)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, offset = read_varint(data, offset)
            yield number, value
        elif wire_type == LENGTH:
            length, offset = read_varint(data, offset)
            yield number, data[offset : offset + length]
            offset += length
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")


def read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset


def fields(data: bytes) -> dict[int, list[int | bytes]]:
    out: dict[int, list[int | bytes]] = {}
    for number, value in parse(data):
        out.setdefault(number, []).append(value)
    return out


def decode_tensor(data: bytes) -> tuple[int, list[int], bytes]:
    tensor_fields = fields(data)
    (shape,) = tensor_fields.get(1, [b""])
    assert isinstance(shape, bytes)
    dims_field = fields(shape).get(1, [])
    dims: list[int] = []
    for dims_value in dims_field:  # packed (bytes) or not (ints)
        if isinstance(dims_value, bytes):
            offset = 0
            while offset < len(dims_value):
                dim, offset = read_varint(dims_value, offset)
                dims.append(dim)
        else:
            dims.append(dims_value)
    (dtype,) = tensor_fields.get(2, [0])
    (payload,) = tensor_fields.get(3, [b""])
    assert isinstance(dtype, int) and isinstance(payload, bytes)
    return dtype, dims, payload


def decode_items(data: bytes) -> dict[str, tuple[int, list[int], bytes]]:
    items = {}
    for entry in fields(data).get(1, []):
        assert isinstance(entry, bytes)
        entry_fields = fields(entry)
        (key,), (value,) = entry_fields[1], entry_fields[2]
        assert isinstance(key, bytes) and isinstance(value, bytes)
        items[key.decode()] = decode_tensor(value)
    return items


# -------------------------------------------------------------------------------- tests

REFERENCE_FIELDS = {
    "PredictRequest": {"servable_spec": 1, "instances": 2},
    "PredictReply": {"servable_spec": 1, "instances": 3, "error_msg": 4},
    "ErrorMsg": {"error_code": 1, "error_msg": 2},
    "Instance": {"items": 1, "output_buffers": 2},
    "Tensor": {"shape": 1, "dtype": 2, "data": 3, "bytes_val": 4, "shm_data": 5},
    "TensorShape": {"dims": 1},
    "ServableSpec": {"name": 1, "method_name": 2, "version_number": 3},
    "ShmTensorData": {"memory_key": 1, "bytes_size": 2, "data_offset": 3, "data_size": 4},
}


def test_field_numbers_match_the_reference() -> None:
    for message, expected in REFERENCE_FIELDS.items():
        descriptor = pb.DESCRIPTOR.message_types_by_name[message]
        numbers = {f.name: f.number for f in descriptor.fields if f.name in expected}
        assert numbers == expected, message
    assert pb.DESCRIPTOR.package == "mindspore.serving.proto"
    assert pb.ErrorMsg.DESCRIPTOR.fields_by_name["error_msg"].type == 12  # bytes
    assert pb.ServableSpec.DESCRIPTOR.fields_by_name["version_number"].type == 4  # uint64
    assert {v.name: v.number for v in pb.DataType.DESCRIPTOR.values}["MS_BYTES"] == 14


def test_hand_encoded_request_parses_with_the_stubs() -> None:
    x1 = np.ones((2, 2), np.float32).tobytes()
    raw = predict_request(
        "add",
        "add_common",
        [instance(x1=tensor(MS_FLOAT32, [2, 2], x1), s=tensor(MS_STRING, [1], bytes_val=(b"hi",)))],
    )
    request = pb.PredictRequest.FromString(raw)
    assert (request.servable_spec.name, request.servable_spec.method_name) == ("add", "add_common")
    item = request.instances[0].items["x1"]
    assert (item.dtype, list(item.shape.dims), item.data) == (pb.MS_FLOAT32, [2, 2], x1)
    assert list(request.instances[0].items["s"].bytes_val) == [b"hi"]
    legacy = pb.PredictRequest.FromString(predict_request("a", "m", [instance()], field_number=3))
    assert (len(legacy.instances), len(legacy.legacy_instances)) == (0, 1)


def test_stub_encoded_reply_decodes_by_hand() -> None:
    reply = pb.PredictReply()
    reply.servable_spec.name = "add"
    reply.error_msg.add(error_code=2, error_msg=b"bad")
    reply.instances.add().items["y"].data = b"\x01\x02"
    decoded = fields(reply.SerializeToString())
    assert fields(decoded[1][0])[1] == [b"add"]  # type: ignore[arg-type]
    assert fields(decoded[4][0]) == {1: [2], 2: [b"bad"]}  # type: ignore[arg-type]
    assert decode_items(decoded[3][0]) == {"y": (0, [], b"\x01\x02")}  # type: ignore[arg-type]


@pytest.mark.parametrize("field_number", [2, 3], ids=["instances", "legacy_instances"])
def test_old_client_bytes_through_the_gateway(grpc_stack: GrpcStack, field_number: int) -> None:
    x1 = np.array([[1, 2], [3, 4]], np.float32)
    raw = predict_request(
        "add",
        "add_common",
        [
            instance(
                x1=tensor(MS_FLOAT32, [2, 2], x1.tobytes()),
                x2=tensor(MS_FLOAT32, [2, 2], x1.tobytes()),
            ),
            instance(x1=tensor(MS_FLOAT32, [2, 2], x1.tobytes())),
        ],
        field_number=field_number,
    )
    with grpc.insecure_channel(grpc_stack.address) as channel:
        answer = channel.unary_unary(PREDICT)(raw, timeout=30)
    assert isinstance(answer, bytes)
    reply = fields(answer)
    spec = fields(reply[1][0])  # type: ignore[arg-type]
    assert (spec[1], spec[2]) == ([b"add"], [b"add_common"])
    errors = [fields(error) for error in reply[4]]  # type: ignore[arg-type]
    assert errors[0] == {}  # code 0 and empty message are both default: nothing on the wire
    assert errors[1][1] == [2]
    assert b"Cannot find input x2" in errors[1][2][0]  # type: ignore[operator]
    first, second = (decode_items(item) for item in reply[3])  # type: ignore[arg-type]
    assert first == {"y": (MS_FLOAT32, [2, 2], (x1 * 2).tobytes())}
    assert second == {}
