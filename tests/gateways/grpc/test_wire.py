"""The zero-copy request decoders agree with protobuf's parser (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msq.gateways.grpc.wire import (
    ZERO_COPY_MIN_BYTES,
    ZERO_COPY_MIN_INSTANCE_BYTES,
    RawPredictRequest,
    RawTensor,
    parse_infer_request,
    parse_predict_request,
    parse_zero_copy,
)
from msq.proto import grpc_predict_v2_pb2 as v2
from msq.proto import ms_service_pb2 as pb

INT64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def tensors(draw: st.DrawFn) -> pb.Tensor:
    tensor = pb.Tensor(dtype=draw(st.integers(-3, 16)))  # type: ignore[arg-type]
    tensor.shape.dims.extend(draw(st.lists(INT64, max_size=4)))
    tensor.bytes_val.extend(draw(st.lists(st.binary(max_size=8), max_size=3)))
    choice = draw(st.sampled_from(["none", "data", "shm"]))
    if choice == "data":
        tensor.data = draw(st.binary(max_size=64))
    elif choice == "shm":
        tensor.shm_data.memory_key = draw(st.text(max_size=5))
    return tensor


@st.composite
def requests(draw: st.DrawFn) -> pb.PredictRequest:
    request = pb.PredictRequest()
    request.servable_spec.name = draw(st.text(max_size=10))
    request.servable_spec.method_name = draw(st.text(max_size=10))
    request.servable_spec.version_number = draw(st.integers(0, 2**64 - 1))
    for field in (request.instances, request.legacy_instances):
        for _ in range(draw(st.integers(0, 3))):
            instance = field.add()
            for name in draw(st.lists(st.text(max_size=6), max_size=3)):
                instance.items[name].CopyFrom(draw(tensors()))
            if draw(st.booleans()):
                instance.output_buffers["o"].data_size = 3
    return request


def expected_tensor(tensor: pb.Tensor) -> RawTensor:
    shared = tensor.WhichOneof("tensor_data") == "shm_data"
    return RawTensor(
        dtype=tensor.dtype,
        dims=list(tensor.shape.dims),
        data=b"" if shared else tensor.data,
        bytes_val=list(tensor.bytes_val),
        shared_memory=shared,
    )


def expected(request: pb.PredictRequest) -> RawPredictRequest:
    def items(instance: pb.Instance) -> dict[str, RawTensor]:
        return {name: expected_tensor(tensor) for name, tensor in instance.items.items()}

    return RawPredictRequest(
        name=request.servable_spec.name,
        method_name=request.servable_spec.method_name,
        version_number=request.servable_spec.version_number,
        instances=[items(instance) for instance in request.instances],
        legacy_instances=[items(instance) for instance in request.legacy_instances],
    )


@settings(max_examples=300, deadline=None)
@given(requests())
def test_decoders_agree_with_protobuf(request: pb.PredictRequest) -> None:
    message = request.SerializeToString()
    assert parse_zero_copy(message) == expected(request)
    assert parse_predict_request(message) == expected(request)


@settings(max_examples=100, deadline=None)
@given(requests(), requests())
def test_concatenated_messages_merge_like_protobuf(
    a: pb.PredictRequest, b: pb.PredictRequest
) -> None:
    raw = a.SerializeToString() + b.SerializeToString()
    assert parse_zero_copy(raw) == expected(pb.PredictRequest.FromString(raw))


def test_tensor_data_is_a_view_of_the_message() -> None:
    request = pb.PredictRequest()
    request.instances.add().items["x"].data = b"\x07" * ZERO_COPY_MIN_INSTANCE_BYTES
    message = request.SerializeToString()
    data = parse_predict_request(message).instances[0]["x"].data
    assert isinstance(data, memoryview)
    assert data.obj is message


def test_unpacked_dims_and_unknown_fields_are_read() -> None:
    # Tensor{shape{dims: 2 (unpacked), dims: -1}, dtype: 11, unknown fixed32/fixed64 fields}
    shape = b"\x08\x02" + b"\x08" + b"\xff" * 9 + b"\x01"
    tensor = b"\x0a" + bytes([len(shape)]) + shape + b"\x10\x0b" + b"\x35abcd" + b"\x39" + bytes(8)
    entry = b"\x0a\x01x\x12" + bytes([len(tensor)]) + tensor
    instance = b"\x0a" + bytes([len(entry)]) + entry
    message = b"\x12" + bytes([len(instance)]) + instance + b"\x20\x05"  # unknown varint field 4
    parsed = parse_zero_copy(message)
    assert parsed.instances[0]["x"] == RawTensor(dtype=11, dims=[2, -1])
    assert pb.PredictRequest.FromString(message).instances[0].items["x"].shape.dims == [2, -1]


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        (b"\x0a\x05ab", "runs past the end"),
        (b"\x08", "truncated varint"),
        (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x00\x00", "field number 0"),
        (b"\x0a\x02\x0a\x00" + b"\x0a\x03\x0a\x01\xff", "utf-8"),
    ],
)
def test_malformed_messages_raise(message: bytes, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_zero_copy(message)
    with pytest.raises(Exception):  # noqa: B017, PT011 - protobuf refuses them too
        pb.PredictRequest.FromString(message)


@st.composite
def infer_requests(draw: st.DrawFn) -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name=draw(st.text(max_size=8)), id=draw(st.text()))
    for index in range(draw(st.integers(0, 3))):
        tensor = request.inputs.add(name=f"in{index}", datatype="BYTES", shape=[index, 2])
        tensor.parameters["p"].int64_param = draw(st.integers(-5, 5))
        request.raw_input_contents.append(draw(st.binary(max_size=40)))
    request.outputs.add(name="out")
    request.parameters["timeout"].int64_param = draw(st.integers(0, 10**9))
    padding = draw(st.sampled_from([0, ZERO_COPY_MIN_BYTES]))
    request.raw_input_contents.append(b"\x01" * padding)
    return request


@settings(max_examples=100, deadline=None)
@given(infer_requests())
def test_infer_request_raw_contents_are_split_off(request: v2.ModelInferRequest) -> None:
    message = request.SerializeToString()
    split = parse_infer_request(message)
    assert split.raw_inputs == list(request.raw_input_contents)
    rest = v2.ModelInferRequest()
    rest.CopyFrom(split.message)
    del rest.raw_input_contents[:]
    expected_rest = v2.ModelInferRequest()
    expected_rest.CopyFrom(request)
    del expected_rest.raw_input_contents[:]
    assert rest == expected_rest
    if len(message) >= ZERO_COPY_MIN_BYTES:
        assert all(isinstance(raw, memoryview) and raw.obj is message for raw in split.raw_inputs)
