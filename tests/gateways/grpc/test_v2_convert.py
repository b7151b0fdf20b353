"""Unit tests of the V2 gRPC message conversions: raw and typed inputs, the timeout
parameter and raw outputs (no sockets)."""

from __future__ import annotations

import numpy as np
import pytest

from msq.gateways.core.errors import GatewayError
from msq.gateways.grpc.v2 import fill_outputs, request_tensors, timeout_parameter
from msq.gateways.grpc.wire import ZERO_COPY_MIN_BYTES, parse_infer_request
from msq.gateways.v2.tensors import V2Tensor, pack_bytes, to_columns
from msq.proto import grpc_predict_v2_pb2 as pb
from msq.proto.errors import ErrorKind
from tests.gateways.v2.test_tensors import batching_model


def infer_request(*inputs: tuple[str, str, list[int]]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    for name, datatype, shape in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
    return request


def tensors_of(request: pb.ModelInferRequest) -> list[V2Tensor]:
    """The request's inputs, as the gateway decodes them off the wire."""
    return request_tensors(parse_infer_request(request.SerializeToString()))


def test_raw_inputs_are_taken_as_they_are() -> None:
    request = infer_request(("a", "FP16", [2]), ("b", "BYTES", [1]))
    halves = np.array([1.5, -2], np.float16).tobytes()
    request.raw_input_contents.extend([halves, pack_bytes([b"xyz"])])
    assert tensors_of(request) == [
        V2Tensor("a", "FP16", (2,), halves),
        V2Tensor("b", "BYTES", (1,), pack_bytes([b"xyz"])),
    ]


@pytest.mark.parametrize(
    ("datatype", "field", "values", "dtype"),
    [
        ("BOOL", "bool_contents", [True, False], np.bool_),
        ("INT8", "int_contents", [-128, 127], np.int8),
        ("INT16", "int_contents", [-3, 4], np.int16),
        ("INT32", "int_contents", [-(2**31), 2**31 - 1], np.int32),
        ("INT64", "int64_contents", [-(2**63), 2**63 - 1], np.int64),
        ("UINT8", "uint_contents", [0, 255], np.uint8),
        ("UINT16", "uint_contents", [1, 65535], np.uint16),
        ("UINT32", "uint_contents", [0, 2**32 - 1], np.uint32),
        ("UINT64", "uint64_contents", [0, 2**64 - 1], np.uint64),
        ("FP32", "fp32_contents", [0.5, -1.25], np.float32),
        ("FP64", "fp64_contents", [1e300, -2.5], np.float64),
    ],
)
def test_typed_contents_become_raw_bytes(
    datatype: str, field: str, values: list[object], dtype: type
) -> None:
    request = infer_request(("x", datatype, [2]))
    getattr(request.inputs[0].contents, field).extend(values)
    (tensor,) = tensors_of(request)
    assert tensor == V2Tensor("x", datatype, (2,), np.array(values, dtype).tobytes())


def test_typed_bytes_contents_are_elements() -> None:
    request = infer_request(("s", "BYTES", [2, 1]))
    request.inputs[0].contents.bytes_contents.extend([b"", b"\x00\xff"])
    assert tensors_of(request) == [V2Tensor("s", "BYTES", (2, 1), [b"", b"\x00\xff"])]


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda r: r.raw_input_contents.append(b"\x00"), "expected 2 raw input contents, got 1"),
        (
            lambda r: (
                r.raw_input_contents.extend([b"", b""]),
                r.inputs[0].contents.int_contents.append(1),
            ),
            "has contents although raw_input_contents are given",
        ),
        (lambda r: setattr(r.inputs[1], "datatype", "FP16"), "'FP16' must come in raw_input"),
        (lambda r: r.inputs[0].contents.int_contents.append(300), "input 'a'"),
    ],
)
def test_bad_contents_are_invalid_input(build: object, needle: str) -> None:
    request = infer_request(("a", "INT8", [1]), ("b", "INT32", [1]))
    build(request)  # type: ignore[operator]
    with pytest.raises(GatewayError) as info:
        tensors_of(request)
    assert info.value.kind is ErrorKind.INVALID_INPUT
    assert needle in info.value.message


def test_the_timeout_parameter_is_read_as_given() -> None:
    request = infer_request()
    assert timeout_parameter(request) is None
    request.parameters["timeout"].int64_param = 1_500_000
    assert timeout_parameter(request) == 1_500_000
    request.parameters["timeout"].uint64_param = 0
    assert timeout_parameter(request) == 0  # refused by the deadline rule, not here
    request.parameters["timeout"].string_param = "1s"
    assert timeout_parameter(request) == "1s"


def test_outputs_are_raw_contents() -> None:
    response = pb.ModelInferResponse()
    numbers = memoryview(np.arange(3, dtype=np.int16).tobytes())
    fill_outputs(
        response,
        [V2Tensor("n", "INT16", (3,), numbers), V2Tensor("s", "BYTES", (2,), [b"a", b""])],
    )
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("n", "INT16", [3]),
        ("s", "BYTES", [2]),
    ]
    assert list(response.raw_output_contents) == [bytes(numbers), pack_bytes([b"a", b""])]


def test_a_large_batch_travels_as_columns_of_the_request_message() -> None:
    batch = np.arange(ZERO_COPY_MIN_BYTES // 4, dtype=np.float32).reshape(-1, 2)
    request = infer_request(("x", "FP32", list(batch.shape)))
    request.raw_input_contents.append(batch.tobytes())
    message = request.SerializeToString()
    model = batching_model("float32", (2,))
    (columns,) = to_columns(model, request_tensors(parse_infer_request(message)))
    data = columns.tensors["x"].data
    assert (columns.count, columns.tensors["x"].shape) == (len(batch), batch.shape)
    assert isinstance(data, memoryview) and data.obj is message  # no copy of the input
    assert bytes(data) == batch.tobytes()
