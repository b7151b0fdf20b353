"""MindSpore Serving REST JSON codec: every request rule, error text and reply encoding."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msq.gateways.core.instances import merge_outcomes
from msq.gateways.rest.ms_json import (
    B64_TYPES,
    MAX_DIMS,
    MSRestError,
    dump_json,
    parse_request,
    parse_value,
    reply_document,
    tensor_json,
)
from msq.proto.codec import WireTensor, from_wire, to_wire
from msq.proto.columns import Outcomes
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Reply
from tests.gateways.rest.test_json_numbers import strict_loads

PREFIX = "Parser request failed, "


def body(instances: object) -> bytes:
    return json.dumps({"instances": instances}).encode()


def value_error(value: object) -> str:
    with pytest.raises(MSRestError) as info:
        parse_value(value)
    return str(info.value)


def request_error(raw: bytes) -> str:
    with pytest.raises(MSRestError) as info:
        parse_request(raw)
    return str(info.value)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- requests: the document ---------------------------------------------------------------


def test_the_reference_example_gives_one_instance_of_two_float32_matrices() -> None:
    raw = b'{"instances":{"x1":[[1.0,1.0],[1.0,1.0]],"x2":[[1.0,1.0],[1.0,1.0]]}}'
    [instance] = parse_request(raw)
    assert sorted(instance) == ["x1", "x2"]
    for tensor in instance.values():
        assert tensor.dtype == "float32"
        assert tensor.shape == (2, 2)
        np.testing.assert_array_equal(from_wire(tensor), np.ones((2, 2), np.float32))


def test_a_list_of_instances_keeps_its_order() -> None:
    instances = parse_request(body([{"x": i} for i in range(5)]))
    assert [int(from_wire(instance["x"])) for instance in instances] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "http message invalid"),
        (b'{"instances": [1, 2}', "Illegal JSON format."),
        (b"\xff\xfe", "Illegal JSON format."),
        (b"[" * 100_000, "Illegal JSON format."),
    ],
)
def test_undecodable_bodies_are_refused_without_the_parse_prefix(raw: bytes, message: str) -> None:
    assert request_error(raw).startswith(message)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_refused_naming_where(literal: str) -> None:
    raw = f'{{"instances": [{{"x": [1.0, {literal}]}}]}}'.encode()
    assert request_error(raw) == (
        f"Illegal JSON format.{literal} at $.instances[0].x[1] is not valid JSON: "
        "non-finite numbers are refused"
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "key 'instances' expects to exist once, but actually 0 times"),
        ([1], "key 'instances' expects to exist once, but actually 0 times"),
        ({"instance": {"x": 1}}, "key 'instances' expects to exist once, but actually 0 times"),
        ({"instances": 1}, "instances no key mode is not supported"),
        ({"instances": "x"}, "instances no key mode is not supported"),
        ({"instances": [1, 2]}, "instances no key mode is not supported"),
        ({"instances": []}, "instances value is array type, but no value"),
        ({"instances": {}}, "json object, value is empty"),
        ({"instances": [{"x": 1}, 2]}, "json array, instance is not object type"),
        ({"instances": [{"x": 1}, {}]}, "json array, instance is object type, but no value"),
        ({"instances": {"": 1}}, "string key is empty"),
    ],
)
def test_malformed_documents_get_the_reference_messages(document: object, message: str) -> None:
    assert request_error(json.dumps(document).encode()) == PREFIX + message


def test_an_error_in_any_instance_refuses_the_request() -> None:
    message = request_error(body([{"x": 1}, {"x": None}]))
    assert message == PREFIX + "json value is null, it is not supported"


# --- requests: JSON scalars and arrays ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        (7, "int32", 7),
        (-(2**31), "int32", -(2**31)),
        (2**31 - 1, "int32", 2**31 - 1),
        (1.5, "float32", 1.5),
        (1e300, "float32", np.inf),
        (True, "bool", True),
        (False, "bool", False),
    ],
)
def test_json_scalars_become_0d_tensors(value: object, dtype: str, expected: object) -> None:
    tensor = parse_value(value)
    assert (tensor.dtype, tensor.shape) == (dtype, ())
    assert from_wire(tensor) == expected


def test_a_json_string_is_a_scalar_string() -> None:
    assert parse_value("héllo") == WireTensor("str", (), "héllo".encode())


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**70])
def test_integers_outside_int32_are_refused_clearly(value: int) -> None:
    assert value_error(value).startswith(f"json integer {value} is out of the int32 range")
    assert value_error([[1, value]]).startswith(f"json integer {value} is out of the int32 range")


def test_null_is_refused() -> None:
    assert value_error(None) == "json value is null, it is not supported"


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        ([1, 2, 3], "int32"),
        ([[1.5, 2.5], [3.5, 4.5], [5.0, 6.0]], "float32"),
        ([[[True], [False]]], "bool"),
        ([[[[-1]]]], "int32"),
    ],
)
def test_nested_arrays_take_their_shape_from_the_nesting(value: list[object], dtype: str) -> None:
    tensor = parse_value(value)
    assert tensor.dtype == dtype
    assert tensor.shape == np.array(value).shape
    np.testing.assert_array_equal(from_wire(tensor), np.array(value, dtype=dtype))


def test_a_one_element_string_array_keeps_its_shape() -> None:
    assert parse_value([["abc"]]) == WireTensor("str", (1, 1), b"abc")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "json array, shape is empty"),
        ([[]], "json array, data type is unknown"),
        ([None, 1], "json array, data type is unknown"),
        ([[1], []], "invalid json array: json size is 0, the dim 1 expected to be 1"),
        ([[1, 2], [3]], "invalid json array: json size is 1, the dim 1 expected to be 2"),
        ([[1, 2], 3], "invalid json array: json type is not array"),
        ([[[1]], [2]], "invalid json array: json type is not array"),
        ([1, [2]], "json array, data should be number, bool, string or bytes"),
        ([[1, 2], [3, [4]]], "json array, data should be number, bool, string or bytes"),
        ([1, None], "json array, data should be number, bool, string or bytes"),
        ([1, {"b64": ""}], "json array, data should be number, bool, string or bytes"),
        ([1, 2.0], "json array, elements type is not equal"),
        ([1.0, 2], "json array, elements type is not equal"),
        ([True, 1], "json array, elements type is not equal"),
        ([1, True], "json array, elements type is not equal"),
        ([[1.0], ["a"]], "json array, elements type is not equal"),
        (["a", "b"], "json array, string or bytes type only support one item"),
        ([{"b64": ""}, {"b64": ""}], "json array, string or bytes type only support one item"),
        (
            [{"b64": "AAAAAA==", "type": "int32"}],
            "json array, item is object type, object only support string or bytes type",
        ),
        ([{"b64": "", "type": "complex"}], "json array, data type is unknown"),
    ],
)
def test_ragged_mixed_and_empty_arrays_get_the_reference_messages(
    value: list[object], message: str
) -> None:
    assert value_error(value) == message


def test_arrays_deeper_than_the_limit_are_refused() -> None:
    deep: object = 1
    for _ in range(MAX_DIMS + 1):
        deep = [deep]
    assert value_error(deep) == f"json array, more than {MAX_DIMS} dims"


# --- requests: b64 objects ----------------------------------------------------------------

NUMERIC_B64_TYPES = sorted(
    name for name, dtype in B64_TYPES.items() if dtype not in ("str", "bytes")
)


@pytest.mark.parametrize("type_name", NUMERIC_B64_TYPES)
def test_b64_objects_carry_every_numeric_type(type_name: str) -> None:
    dtype = B64_TYPES[type_name]
    array = (np.arange(6) % 2 if dtype == "bool" else np.arange(6) + 1).astype(dtype).reshape(2, 3)
    tensor = parse_value({"b64": b64(array.tobytes()), "type": type_name, "shape": [2, 3]})
    assert (tensor.dtype, tensor.shape) == (dtype, (2, 3))
    np.testing.assert_array_equal(from_wire(tensor), array)


def test_a_b64_object_without_shape_is_a_scalar() -> None:
    tensor = parse_value({"b64": b64(np.float16(0.5).tobytes()), "type": "fp16"})
    assert (tensor.dtype, tensor.shape) == ("float16", ())
    assert from_wire(tensor) == np.float16(0.5)


def test_a_b64_object_without_type_is_bytes() -> None:
    assert parse_value({"b64": b64(b"\x00\xffraw")}) == WireTensor("bytes", (), b"\x00\xffraw")


def test_b64_strings_and_bytes_accept_a_one_element_shape() -> None:
    text = {"b64": b64("añb".encode()), "type": "str", "shape": [1]}
    assert parse_value(text) == WireTensor("str", (1,), "añb".encode())
    assert parse_value([{"b64": b64(b"xy")}]) == WireTensor("bytes", (1,), b"xy")


def test_zero_sized_b64_tensors_are_allowed_anywhere_in_the_shape() -> None:
    tensor = parse_value({"b64": "", "type": "float32", "shape": [0, 3]})
    assert tensor.shape == (0, 3)
    assert np.asarray(from_wire(tensor)).shape == (0, 3)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({}, "json object, value is empty"),
        (
            {"b64": "", "type": "int8", "shape": [], "x": 1},
            "json object, items size is more than 3, "
            "only support specified ['b64', 'type', 'shape']",
        ),
        (
            {"b64": "", "kind": "int8"},
            "json object, key is not ['b64', 'type', 'shape'], fail key:kind",
        ),
        ({"type": "int8"}, "json object, 'b64' should be specified only one time"),
        ({"b64": "", "type": 3}, "json object, key is 'type', value should be string type"),
        ({"b64": "", "type": "complex64"}, "json object, specified type:'complex64' is illegal"),
        ({"b64": "", "shape": 2}, "json object, key is 'shape', value should be array type"),
        (
            {"b64": "", "shape": [1.0]},
            "json object, key is 'shape', array value should be unsigned integer",
        ),
        (
            {"b64": "", "shape": [True]},
            "json object, key is 'shape', array value should be unsigned integer",
        ),
        (
            {"b64": "", "shape": [2, -1]},
            "json object, key is 'shape', number value should not be negative number, "
            "shape value: [2,-1]",
        ),
        (
            {"b64": "", "type": "str", "shape": [2]},
            "json object, only support scalar when data type is string or bytes, "
            "please check 'type' or 'shape'",
        ),
        (
            {"b64": "", "type": "bytes", "shape": [0]},
            "json object, only support scalar when data type is string or bytes, "
            "please check 'type' or 'shape'",
        ),
        ({"b64": 5}, "get scalar data failed, type is string, but json is not string type"),
        ({"b64": "abc"}, "'abc' is illegal b64 encode string"),
        ({"b64": "ab$="}, "'ab$=' is illegal b64 encode string"),
        (
            {"b64": b64(b"\x00" * 12), "type": "float32", "shape": [2]},
            "size is not matched, decode base64 size:12; Given info: type:float32; "
            "type size:4; element nums:2",
        ),
        (
            {"b64": b64(b"\x00" * 3), "type": "fp16"},
            "size is not matched, decode base64 size:3; Given info: type:float16; "
            "type size:2; element nums:1",
        ),
        ({"b64": b64(b"\xff"), "type": "str"}, "b64 decoded data of type str is not valid UTF-8"),
        (
            {"b64": "", "shape": [1] * (MAX_DIMS + 1)},
            f"json object, key is 'shape', more than {MAX_DIMS} dims",
        ),
    ],
)
def test_bad_b64_objects_get_the_reference_messages(obj: dict[str, object], message: str) -> None:
    assert value_error(obj) == message


def test_a_long_illegal_b64_string_is_shortened_in_the_message() -> None:
    message = value_error({"b64": "!" * 1000})
    assert message == f"'{'!' * 64}...' is illegal b64 encode string"


# --- property: any JSON value gives a tensor or a clear error ----------------------------

json_leaves = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.fixed_dictionaries({"b64": st.sampled_from(["", "AA==", "!"])}),
)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3), max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_value_is_a_tensor_or_a_reference_error(value: object) -> None:
    try:
        tensor = parse_value(value)
    except MSRestError:
        return
    value_back = from_wire(tensor)
    if tensor.dtype in ("str", "bytes"):
        assert isinstance(value_back, (str, bytes))
    else:
        assert np.asarray(value_back).shape == tensor.shape


rectangular = st.sampled_from(["int32", "float32", "bool"]).flatmap(
    lambda dtype: st.lists(st.integers(1, 3), min_size=1, max_size=3).flatmap(
        lambda shape: st.lists(
            {
                "int32": st.integers(-(2**31), 2**31 - 1),
                "float32": st.floats(width=32, allow_nan=False, allow_infinity=False),
                "bool": st.booleans(),
            }[dtype],
            min_size=int(np.prod(shape)),
            max_size=int(np.prod(shape)),
        ).map(lambda flat: np.array(flat, dtype=dtype).reshape(shape))
    )
)


@settings(max_examples=200, deadline=None)
@given(rectangular)
def test_rectangular_arrays_round_trip_exactly(array: np.ndarray) -> None:
    tensor = parse_value(array.tolist())
    assert (tensor.dtype, tensor.shape) == (array.dtype.name, array.shape)
    np.testing.assert_array_equal(from_wire(tensor), array)
    assert tensor_json(tensor) == array.tolist()


# --- replies ------------------------------------------------------------------------------


def test_the_reference_example_reply_is_byte_exact() -> None:
    document, failure = reply_document(
        Outcomes.of([{"y": to_wire(np.full((2, 2), 2.0, np.float32))}])
    )
    assert failure is None
    assert dump_json(document) == b'{"instances":[{"y":[[2.0,2.0],[2.0,2.0]]}]}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float32(0.1), 0.10000000149011612),
        (np.float16(0.1), 0.0999755859375),
        (np.float64(0.1), 0.1),
        (np.int8(-3), -3),
        (np.uint64(2**64 - 1), 2**64 - 1),
        (np.bool_(True), True),
        (np.array([[1, 2]], np.int16), [[1, 2]]),
        (np.zeros((2, 0), np.float32), [[], []]),
        ("text", "text"),
        (b"\x00\x01", {"b64": "AAE="}),
    ],
)
def test_outputs_are_encoded_as_the_reference_did(value: object, expected: object) -> None:
    assert tensor_json(to_wire(value)) == expected


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_finite_outputs_are_strings_in_strict_json(dtype: type) -> None:
    outcome = {
        "m": to_wire(np.array([[np.nan, 0.5], [np.inf, -np.inf]], dtype)),
        "s": to_wire(np.array(-np.inf, dtype)),
    }
    document, failure = reply_document(Outcomes.of([outcome]))
    assert failure is None
    raw = b'{"instances":[{"m":[["NaN",0.5],["Infinity","-Infinity"]],"s":"-Infinity"}]}'
    assert dump_json(document) == raw
    assert strict_loads(raw) == document


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64, np.uint8])
def test_finite_outputs_are_written_byte_for_byte_as_before(dtype: type) -> None:
    array = (np.arange(-6, 6).reshape(3, 4) * 1.25 + 0.1).astype(dtype)
    document, _ = reply_document(Outcomes.of([{"y": to_wire(array)}]))
    before = json.dumps({"instances": [{"y": array.tolist()}]}, separators=(",", ":"))
    assert dump_json(document) == before.encode()


def test_one_element_string_and_bytes_outputs_keep_their_shape() -> None:
    assert tensor_json(WireTensor("str", (1,), b"s")) == ["s"]
    assert tensor_json(WireTensor("bytes", (1, 1), b"\xff")) == [[{"b64": "/w=="}]]


def test_reply_json_sorts_keys_and_keeps_unicode() -> None:
    outcome = {"z": to_wire("中"), "a": to_wire(np.int32(1))}
    document, _ = reply_document(Outcomes.of([outcome]))
    assert dump_json(document) == '{"instances":[{"a":1,"z":"中"}]}'.encode()


def test_mixed_outcomes_fail_only_the_bad_instances() -> None:
    bad = Failure(ErrorKind.INVALID_INPUT, "Cannot find input x1 in instance input")
    document, failure = reply_document(Outcomes.of([{"y": to_wire(np.int32(4))}, bad]))
    assert failure is None
    assert document == {"instances": [{"y": 4}, {"error_msg": bad.message}]}


def test_instances_all_failing_alike_are_a_whole_request_failure() -> None:
    bad = Failure(ErrorKind.INVALID_INPUT, "Cannot find input x1 in instance input")
    document, failure = reply_document(Outcomes.of([bad, bad]))
    assert (document, failure) == ({"error_msg": bad.message}, bad)
    other = Failure(ErrorKind.INVALID_INPUT, "Cannot find input x2 in instance input")
    document, failure = reply_document(Outcomes.of([bad, other]))
    assert failure is None
    assert document == {"instances": [{"error_msg": bad.message}, {"error_msg": other.message}]}


def test_a_request_error_is_the_whole_answer() -> None:
    error = Failure(ErrorKind.NOT_FOUND, "servable is not available")
    document, failure = reply_document(merge_outcomes([{}, {}, {}], Reply(1, error=error)))
    assert (dump_json(document), failure) == (b'{"error_msg":"servable is not available"}', error)


def test_an_undecodable_output_is_reported_not_raised() -> None:
    broken = Columns(1, {"y": WireTensor("float32", (1, 2), b"\x00")})
    document, failure = reply_document(Outcomes([broken], [], 1))
    assert failure is not None
    assert failure.kind is ErrorKind.INTERNAL
    assert document == {"error_msg": failure.message}
    assert failure.message.startswith("Failed to construct the response: data size 1")
