"""V2 REST bodies: tritonclient's own requests decode, our responses decode in tritonclient."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st

from msq.gateways.core.errors import GatewayError
from msq.gateways.rest.v2_codec import InferRequest, encode_infer_response, parse_infer_request
from msq.gateways.v2.tensors import V2Tensor, to_columns, unpack_bytes
from msq.proto.errors import ErrorKind
from tests.gateways.rest.test_json_numbers import strict_loads
from tests.gateways.v2.test_tensors import batching_model

ARRAYS: dict[str, np.ndarray] = {
    "f": np.array([[1.5, -2.0], [3.25, 0.0]], np.float32),
    "i": np.array([7, -8, 2**40], np.int64),
    "b": np.array([True, False, True]),
    "h": np.array([0.5, 1.0], np.float16),
    "u": np.array([[255, 0, 1]], np.uint8),
    "s": np.array([b"caf\xc3\xa9", b"\x00\xff"], dtype=np.object_),
}
DATATYPES = {"f": "FP32", "i": "INT64", "b": "BOOL", "h": "FP16", "u": "UINT8", "s": "BYTES"}


def triton_inputs(binary: bool, names: str = "fibhus") -> list[triton.InferInput]:
    inputs = []
    for name in names:
        array = ARRAYS[name]
        if name == "s" and not binary:
            array = np.array([b"caf\xc3\xa9", b"x"], dtype=np.object_)  # JSON carries text only
        item = triton.InferInput(name, list(array.shape), DATATYPES[name])
        item.set_data_from_numpy(array, binary_data=binary)
        inputs.append(item)
    return inputs


def decoded(tensor: V2Tensor) -> np.ndarray:
    if tensor.datatype == "BYTES":
        elements = tensor.data if isinstance(tensor.data, list) else unpack_bytes(tensor.data)
        return np.array(elements, dtype=np.object_)
    assert not isinstance(tensor.data, list)
    dtype = {"FP32": "f4", "INT64": "i8", "BOOL": "?", "FP16": "f2", "UINT8": "u1"}
    return np.frombuffer(memoryview(tensor.data), dtype[tensor.datatype]).reshape(tensor.shape)


def request_from(inputs: list[triton.InferInput], **kwargs: object) -> InferRequest:
    body, header_length = triton.InferenceServerClient.generate_request_body(inputs, **kwargs)
    return parse_infer_request(body, None if header_length is None else str(header_length))


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_requests_decode_to_the_same_tensors(binary: bool) -> None:
    inputs = triton_inputs(binary)
    request = request_from(inputs)
    assert [t.name for t in request.inputs] == list("fibhus")
    for tensor, sent in zip(request.inputs, inputs, strict=True):
        assert tensor.datatype == sent.datatype()
        assert list(tensor.shape) == sent.shape()
        expected = ARRAYS[tensor.name]
        if tensor.name == "s" and not binary:
            expected = np.array([b"caf\xc3\xa9", b"x"], dtype=np.object_)
        np.testing.assert_array_equal(decoded(tensor).reshape(expected.shape), expected)


def test_binary_inputs_are_views_of_the_body() -> None:
    request = request_from(triton_inputs(True, "f"))
    assert isinstance(request.inputs[0].data, memoryview)


def test_a_binary_batch_travels_as_columns_of_the_body() -> None:
    batch = np.arange(12, dtype=np.float32).reshape(6, 2)
    item = triton.InferInput("x", list(batch.shape), "FP32")
    item.set_data_from_numpy(batch, binary_data=True)
    body, header_length = triton.InferenceServerClient.generate_request_body([item])
    request = parse_infer_request(body, str(header_length))
    (columns,) = to_columns(batching_model("float32", (2,)), request.inputs)
    data = columns.tensors["x"].data
    assert (columns.count, columns.tensors["x"].shape) == (6, (6, 2))
    assert isinstance(data, memoryview) and data.obj is body  # no copy of the input
    assert bytes(data) == batch.tobytes()


def test_without_requested_outputs_tritonclient_asks_for_binary() -> None:
    request = request_from(triton_inputs(True, "f"))
    assert (request.outputs, request.binary_default, request.binary("y")) == ({}, True, True)


def test_requested_outputs_keep_their_order_and_binary_flags() -> None:
    outputs = [
        triton.InferRequestedOutput("z", binary_data=False),
        triton.InferRequestedOutput("a", binary_data=True),
    ]
    request = request_from(triton_inputs(True, "f"), outputs=outputs, request_id="r-1")
    assert list(request.outputs) == ["z", "a"]
    assert (request.binary("z"), request.binary("a"), request.request_id) == (False, True, "r-1")


def test_an_output_without_a_flag_follows_binary_data_output() -> None:
    document = {
        "inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}],
        "outputs": [{"name": "y"}],
        "parameters": {"binary_data_output": True},
    }
    request = parse_infer_request(json.dumps(document).encode())
    assert request.outputs == {"y": None}
    assert request.binary("y")


def test_the_timeout_parameter_is_read_as_given() -> None:
    assert request_from(triton_inputs(True, "f"), timeout=2_500_000).timeout == 2_500_000
    assert request_from(triton_inputs(True, "f")).timeout is None


def test_nested_json_data_is_read_row_major() -> None:
    document = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2.5], [3, 4]]}]
    }
    [tensor] = parse_infer_request(json.dumps(document).encode()).inputs
    assert not isinstance(tensor.data, list)
    np.testing.assert_array_equal(
        np.frombuffer(memoryview(tensor.data), "f8"), [1.0, 2.5, 3.0, 4.0]
    )


def one_input(**fields: object) -> bytes:
    item: dict[str, object] = {"name": "x", "shape": [2], "datatype": "INT32", "data": [1, 2]}
    item.update(fields)
    return json.dumps({"inputs": [{k: v for k, v in item.items() if v is not None}]}).encode()


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"{", None, "malformed JSON in the inference request"),
        (b"[]", None, "the inference request must be a JSON object"),
        (b"{}", None, "'inputs' must be a JSON array"),
        (b'{"inputs": [1]}', None, "'inputs[0]' must be a JSON object"),
        (b'{"inputs": [], "parameters": 3}', None, "'parameters' must be a JSON object"),
        (b'{"inputs": [], "id": 3}', None, "'id' must be a string"),
        (b'{"inputs": [], "outputs": [{}]}', None, "'outputs[0].name' must be a string"),
        (
            b'{"inputs": [], "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]}',
            None,
            "'outputs[0].parameters.binary_data' must be true or false",
        ),
        (
            b'{"inputs": [], "outputs": [{"name": "y", "parameters": {"classification": 2}}]}',
            None,
            "the classification extension is not supported",
        ),
        (b"{}", "x", "Inference-Header-Content-Length 'x' is not an integer"),
        (b"{}", "3", "Inference-Header-Content-Length 3 does not fit the body of 2 bytes"),
        (b"{}", "-1", "Inference-Header-Content-Length -1 does not fit"),
        (b'{"inputs": []}abc', "14", "add up to 0 bytes, but the body carries 3 bytes"),
        (one_input(name=5), None, "every input needs a string 'name'"),
        (one_input(datatype=None), None, "input 'x' needs a string 'datatype'"),
        (one_input(shape=[-1]), None, "input 'x' needs a 'shape' of non-negative integers"),
        (one_input(shape="2"), None, "input 'x' needs a 'shape' of non-negative integers"),
        (one_input(data=None), None, "input 'x' has neither 'data' nor 'binary_data_size'"),
        (
            one_input(parameters={"binary_data_size": 8}),
            None,
            "input 'x' has both 'data' and 'binary_data_size'",
        ),
        (
            one_input(data=None, parameters={"binary_data_size": 8}),
            None,
            "input 'x': binary_data_size 8 runs past the end of the body (0 bytes left)",
        ),
        (
            one_input(data=None, parameters={"binary_data_size": "8"}),
            None,
            "input 'x': 'binary_data_size' must be a non-negative integer",
        ),
        (
            one_input(parameters={"shared_memory_region": "r"}),
            None,
            "input 'x': the shared memory extension is not supported",
        ),
        (one_input(datatype="BF16"), None, "input 'x': datatype 'BF16' is not supported"),
        (one_input(data=[1, 2, 3]), None, "input 'x': 3 data elements do not match shape [2]"),
        (one_input(data=[[1, 2], [3]]), None, "input 'x': 'data' is not a rectangular array"),
        (one_input(data=[1, [2]]), None, "input 'x': 'data' is not a rectangular array"),
        (one_input(data=[1, 2.5]), None, "INT32 data must be a flat or nested array of int"),
        (one_input(data=[1, True]), None, "INT32 data must be a flat or nested array of int"),
        (one_input(data=[1, "2"]), None, "got str"),
        (one_input(data=[2**31, 1]), None, "input 'x': a value is out of the range of INT32"),
        (one_input(datatype="UINT8", data=[-1, 1]), None, "out of the range of UINT8"),
        (one_input(datatype="BOOL", data=[1, 0]), None, "BOOL data must be a flat or nested"),
        (one_input(datatype="FP32", data=[True, 1.0]), None, "got bool"),
        (one_input(datatype="BYTES", data=[1, 2]), None, "input 'x': BYTES data must be strings"),
    ],
)
def test_malformed_requests_name_the_problem(
    body: bytes, header_length: str | None, message: str
) -> None:
    with pytest.raises(GatewayError) as info:
        parse_infer_request(body, header_length)
    assert info.value.kind is ErrorKind.INVALID_INPUT
    assert message in info.value.message


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_refused_naming_where(literal: str) -> None:
    body = one_input(datatype="FP32").replace(b"[1, 2]", f"[1, {literal}]".encode())
    with pytest.raises(GatewayError) as info:
        parse_infer_request(body)
    assert info.value.kind is ErrorKind.INVALID_INPUT
    assert info.value.message == (
        f"malformed JSON in the inference request: {literal} at $.inputs[0].data[1] "
        "is not valid JSON: non-finite numbers are refused"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=12,
)
input_items = st.fixed_dictionaries(
    {
        "name": st.text(max_size=2),
        "shape": st.lists(st.integers(-1, 3), max_size=3),
        "datatype": st.sampled_from(
            ["BOOL", "INT8", "UINT64", "FP16", "FP64", "BYTES", "BF16", ""]
        ),
    },
    optional={
        "data": json_values,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-1, 24) | json_values}
        ),
    },
)
documents = st.fixed_dictionaries(
    {"inputs": st.lists(input_items, max_size=3)},
    optional={
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=2)},
                optional={"parameters": st.dictionaries(st.just("binary_data"), json_values)},
            ),
            max_size=2,
        ),
        "parameters": st.dictionaries(
            st.sampled_from(["timeout", "binary_data_output", "priority"]), json_values
        ),
        "id": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(document=documents | json_values, tail=st.binary(max_size=24))
def test_any_body_is_a_request_or_a_clear_error(document: object, tail: bytes) -> None:
    header = json.dumps(document).encode()
    try:
        parse_infer_request(header + tail, str(len(header)))
    except GatewayError as exc:
        kind: ErrorKind | None = exc.kind
    else:
        kind = None
    assert kind in (None, ErrorKind.INVALID_INPUT)


OUTPUTS = [
    V2Tensor("y", "FP32", (2, 2), np.array([[1, 2], [3, np.nan]], np.float32).tobytes()),
    V2Tensor("label", "INT64", (2,), np.array([3, -1], np.int64).tobytes()),
    V2Tensor("text", "BYTES", (2,), [b"ok", "é".encode()]),
    V2Tensor("flag", "BOOL", (1,), np.array([True]).tobytes()),
]


@pytest.mark.parametrize("binary", [True, False])
def test_responses_decode_in_tritonclient(binary: bool) -> None:
    request = InferRequest(inputs=[], request_id="abc", binary_default=binary)
    body, header_length = encode_infer_response("add.add_common", 2, request, OUTPUTS)
    assert (header_length is not None) == binary
    result = triton.InferenceServerClient.parse_response_body(body, header_length=header_length)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "add.add_common",
        "2",
        "abc",
    )
    np.testing.assert_array_equal(result.as_numpy("y"), np.array([[1, 2], [3, np.nan]], np.float32))
    np.testing.assert_array_equal(result.as_numpy("label"), [3, -1])
    # tritonclient gives BYTES read from JSON as str, from binary data as bytes
    text = [b"ok", "é".encode()] if binary else ["ok", "é"]
    assert result.as_numpy("text").tolist() == text
    assert result.as_numpy("flag").tolist() == [True]


def json_response(outputs: list[V2Tensor]) -> bytes:
    body, header_length = encode_infer_response("m", 1, InferRequest(inputs=[]), outputs)
    assert header_length is None
    return body


@pytest.mark.parametrize(("datatype", "dtype"), [("FP16", "f2"), ("FP32", "f4"), ("FP64", "f8")])
def test_non_finite_json_outputs_are_strings_in_strict_json(datatype: str, dtype: str) -> None:
    matrix = np.array([[np.nan, 0.5], [np.inf, -np.inf]], dtype)
    scalar = np.array(np.nan, dtype)
    body = json_response(
        [
            V2Tensor("m", datatype, (2, 2), matrix.tobytes()),
            V2Tensor("s", datatype, (), scalar.tobytes()),
        ]
    )
    outputs = strict_loads(body)["outputs"]
    assert [output["data"] for output in outputs] == [
        ["NaN", 0.5, "Infinity", "-Infinity"],
        ["NaN"],
    ]
    assert b'"data":["NaN",0.5,"Infinity","-Infinity"]' in body
    result = triton.InferenceServerClient.parse_response_body(body)
    np.testing.assert_array_equal(result.as_numpy("m"), matrix)


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("FP16", "f2"), ("FP32", "f4"), ("FP64", "f8"), ("INT64", "i8"), ("UINT8", "u1")],
)
def test_finite_json_outputs_are_written_byte_for_byte_as_before(datatype: str, dtype: str) -> None:
    array = (np.arange(12).reshape(3, 4) * 1.25 + 0.1).astype(dtype)
    body = json_response([V2Tensor("y", datatype, (3, 4), array.tobytes())])
    output = {"name": "y", "datatype": datatype, "shape": [3, 4], "data": array.ravel().tolist()}
    document = {"model_name": "m", "model_version": "1", "outputs": [output]}
    assert body == json.dumps(document, separators=(",", ":")).encode()


def test_binary_and_json_outputs_mix_per_output() -> None:
    request = InferRequest(inputs=[], outputs={"y": False, "label": True})
    body, header_length = encode_infer_response("m", 1, request, OUTPUTS[:2])
    assert header_length is not None
    header = json.loads(body[:header_length])
    assert header["outputs"][0]["data"][:3] == [1.0, 2.0, 3.0]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 16}
    assert body[header_length:] == np.array([3, -1], np.int64).tobytes()


def test_bytes_that_are_not_text_must_be_asked_for_in_binary() -> None:
    raw = V2Tensor("blob", "BYTES", (1,), [b"\xff"])
    with pytest.raises(GatewayError, match="output 'blob' is not UTF-8 text"):
        encode_infer_response("m", 1, InferRequest(inputs=[]), [raw])
    body, header_length = encode_infer_response(
        "m", 1, InferRequest(inputs=[], binary_default=True), [raw]
    )
    assert header_length is not None
    assert body[header_length:] == b"\x01\x00\x00\x00\xff"
