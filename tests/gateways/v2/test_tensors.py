"""Unit tests of V2 tensors <-> msq columns: batches kept whole without copies, BYTES layout,
validation messages and outputs from columns (no sockets)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msq.gateways.core.errors import GatewayError
from msq.gateways.v2.datatypes import DTYPE_TO_V2
from msq.gateways.v2.models import V2Model
from msq.gateways.v2.tensors import (
    V2Tensor,
    check_outputs,
    pack_bytes,
    to_columns,
    to_outputs,
    unpack_bytes,
)
from msq.proto.codec import WireTensor, from_wire, to_wire
from msq.proto.columns import Outcomes, split, take_rows
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import BatchPolicy, Columns, MethodSignature, TensorSpec

ADD = V2Model(
    "add",
    1,
    (1,),
    MethodSignature(
        "add_common",
        (TensorSpec("x1", "float32", (2, 2)), TensorSpec("x2", "float32", (2, 2))),
        (TensorSpec("y", "float32", (2, 2)),),
    ),
    1,
)
ECHO = V2Model(
    "echo",
    1,
    (1,),
    MethodSignature(
        "echo",
        (TensorSpec("text", "str", ()), TensorSpec("blob", "bytes", (1,)), TensorSpec("n")),
        (TensorSpec("text"), TensorSpec("n")),
        BatchPolicy(sizes=(1, 4)),
    ),
    1,
)


NUMBERS = V2Model(
    "numbers",
    1,
    (1,),
    MethodSignature(
        "n",
        (TensorSpec("n", "int32", (2,)),),
        (TensorSpec("n", "int32", (2,)),),
        BatchPolicy(sizes=(1, 4)),
    ),
    1,
)


def raw(array: np.ndarray) -> bytes:
    return array.tobytes()


def test_pack_and_unpack_bytes() -> None:
    elements = [b"", b"abc", bytes(range(256))]
    packed = pack_bytes(elements)
    assert packed[:8] == b"\x00\x00\x00\x00\x03\x00\x00\x00"
    assert unpack_bytes(packed) == elements
    assert unpack_bytes(memoryview(packed)) == elements
    assert unpack_bytes(b"") == []


@pytest.mark.parametrize(
    ("data", "needle"), [(b"\x01\x00", "truncated"), (b"\x05\x00\x00\x00ab", "longer")]
)
def test_unpack_bytes_rejects_malformed_data(data: bytes, needle: str) -> None:
    with pytest.raises(GatewayError) as info:
        unpack_bytes(data)
    assert info.value.kind is ErrorKind.INVALID_INPUT
    assert needle in info.value.message


def test_non_batching_model_takes_one_instance_as_is() -> None:
    x1 = np.arange(4, dtype=np.float32).reshape(2, 2)
    data = raw(x1)
    (columns,) = to_columns(
        ADD, [V2Tensor("x1", "FP32", (2, 2), data), V2Tensor("x2", "FP32", (2, 2), data)]
    )
    assert columns.count == 1
    assert columns.tensors["x1"] == WireTensor("float32", (1, 2, 2), data)
    assert columns.tensors["x1"].data is data  # no copy


def test_a_numeric_batch_is_one_column_of_the_request_buffer() -> None:
    numbers = np.arange(6, dtype=np.int32).reshape(3, 2)
    numbers_raw = memoryview(bytearray(raw(numbers)))
    (columns,) = to_columns(NUMBERS, [V2Tensor("n", "INT32", (3, 2), numbers_raw)])
    assert columns == Columns(3, {"n": WireTensor("int32", (3, 2), numbers_raw)})
    assert columns.tensors["n"].data is numbers_raw  # the request's buffer, not a copy


def test_string_inputs_make_every_row_travel_alone_as_views() -> None:
    numbers = np.arange(6, dtype=np.int32).reshape(3, 2)
    numbers_raw = bytearray(raw(numbers))
    parts = to_columns(
        ECHO,
        [
            V2Tensor("text", "BYTES", (3,), [b"a", "\u00e9".encode(), b""]),
            V2Tensor("blob", "BYTES", (3, 1), pack_bytes([b"x", b"", b"yz"])),
            V2Tensor("n", "INT32", (3, 2), numbers_raw),
        ],
    )
    assert [part.count for part in parts] == [1, 1, 1]
    instances = split(parts)
    assert [from_wire(i["text"]) for i in instances] == ["a", "\u00e9", ""]
    assert [i["blob"] for i in instances] == [
        WireTensor("bytes", (1,), element) for element in (b"x", b"", b"yz")
    ]
    for row, instance in enumerate(instances):
        np.testing.assert_array_equal(from_wire(instance["n"]), numbers[row])
    numbers_raw[0] = 42  # the rows are views of the request's bytes
    np.testing.assert_array_equal(from_wire(instances[0]["n"]), [42, 1])


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        ([V2Tensor("x1", "FP32", (2, 2), bytes(16))], "Cannot find input x2 in instance input"),
        (
            [V2Tensor("x1", "FP32", (2, 2), bytes(16)), V2Tensor("x1", "FP32", (2, 2), bytes(16))],
            "given twice",
        ),
        ([V2Tensor("x3", "FP32", (2, 2), bytes(16))], "unexpected inference input 'x3'"),
        ([V2Tensor("x1", "FP32", (2, 2), bytes(12))], "12 bytes do not match shape [2, 2]"),
        ([V2Tensor("x1", "BF16", (2, 2), bytes(8))], "'BF16' is not supported"),
        ([V2Tensor("x1", "FP32", (2, -1), bytes(16))], "has shape [2, -1]"),
        ([V2Tensor("x1", "FP32", (2, 2), [b"a"])], "is not BYTES"),
    ],
)
def test_bad_inputs_of_non_batching_model(inputs: list[V2Tensor], needle: str) -> None:
    with pytest.raises(GatewayError) as info:
        to_columns(ADD, inputs)
    assert info.value.kind is ErrorKind.INVALID_INPUT
    assert needle in info.value.message


def ok_echo(n_rows: int = 2) -> list[V2Tensor]:
    return [
        V2Tensor("text", "BYTES", (n_rows,), [b"t"] * n_rows),
        V2Tensor("blob", "BYTES", (n_rows, 1), [b"b"] * n_rows),
    ]


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        ([*ok_echo(), V2Tensor("n", "INT8", (3,), bytes(3))], "different batch sizes"),
        ([*ok_echo(), V2Tensor("n", "INT8", (), bytes(1))], "needs a batch dimension"),
        ([*ok_echo(), V2Tensor("n", "INT8", (0, 2), b"")], "batch of size 0"),
        (
            [V2Tensor("text", "BYTES", (2, 2), [b"t"] * 4), *ok_echo()[1:]],
            "one element per instance",
        ),
        ([V2Tensor("text", "BYTES", (3,), [b"t"] * 2), *ok_echo()[1:]], "2 BYTES elements"),
    ],
)
def test_bad_inputs_of_batching_model(inputs: list[V2Tensor], needle: str) -> None:
    with pytest.raises(GatewayError) as info:
        to_columns(ECHO, inputs)
    assert info.value.kind is ErrorKind.INVALID_INPUT
    assert needle in info.value.message


def test_outputs_are_stacked_for_batching_models() -> None:
    rows = [
        {"n": to_wire(np.array([i, i + 1], dtype=np.uint16)), "text": to_wire(f"r{i}")}
        for i in range(3)
    ]
    text, n = to_outputs(ECHO, Outcomes.of(rows))
    assert text == V2Tensor("text", "BYTES", (3,), [b"r0", b"r1", b"r2"])
    assert (n.name, n.datatype, n.shape) == ("n", "UINT16", (3, 2))
    assert n.data == np.array([0, 1, 1, 2, 2, 3], np.uint16).tobytes()
    (only_n,) = to_outputs(ECHO, Outcomes.of(rows), requested=["n"])
    assert only_n == n


def test_one_column_holding_every_row_is_answered_without_a_copy() -> None:
    column = to_wire(np.arange(6, dtype=np.int32).reshape(3, 2))
    (n,) = to_outputs(NUMBERS, Outcomes([Columns(3, {"n": column})], [], 3))
    assert n == V2Tensor("n", "INT32", (3, 2), column.data)
    assert n.data is column.data


def test_several_columns_are_concatenated_once() -> None:
    first, second = np.arange(4, dtype=np.int32).reshape(2, 2), np.full((1, 2), 9, np.int32)
    parts = [Columns(2, {"n": to_wire(first)}), Columns(1, {"n": to_wire(second)})]
    (n,) = to_outputs(NUMBERS, Outcomes(parts, [], 3))
    assert (n.datatype, n.shape, bytes(n.data)) == (
        "INT32",
        (3, 2),
        raw(np.vstack([first, second])),
    )


def test_output_of_non_batching_model_keeps_its_shape_and_buffer() -> None:
    y = np.ones((1, 2, 2), np.float32)
    wire = to_wire(y)
    (out,) = to_outputs(ADD, Outcomes([Columns(1, {"y": wire})], [], 1))
    assert out == V2Tensor("y", "FP32", (2, 2), wire.data)
    assert out.data is wire.data


def test_a_failed_instance_fails_the_v2_request() -> None:
    good = {"n": to_wire(np.int8(1)), "text": to_wire("x")}
    with pytest.raises(GatewayError) as info:
        to_outputs(ECHO, Outcomes.of([good, Failure(ErrorKind.INVALID_INPUT, "bad n")]))
    assert (info.value.kind, info.value.message) == (ErrorKind.INVALID_INPUT, "instance 1: bad n")
    with pytest.raises(GatewayError) as single:
        to_outputs(ADD, Outcomes.of([Failure(ErrorKind.MODEL_ERROR, "boom")]))
    assert (single.value.kind, single.value.message) == (ErrorKind.MODEL_ERROR, "boom")


def test_inconsistent_or_missing_outputs_are_internal_errors() -> None:
    rows = [{"n": to_wire(np.int8(1)), "text": to_wire("x")}, {"n": to_wire(np.int16(1))}]
    with pytest.raises(GatewayError) as info:
        to_outputs(ECHO, Outcomes.of(rows))
    assert info.value.message == "output 'text' differs in dtype or shape between instances"
    assert info.value.kind is ErrorKind.INTERNAL
    with pytest.raises(GatewayError) as missing:
        to_outputs(ECHO, Outcomes([], [], 0))
    assert (missing.value.kind, missing.value.message) == (
        ErrorKind.INTERNAL,
        "the model returned no instances",
    )


def test_requested_outputs_are_checked() -> None:
    check_outputs(ADD, ["y"])
    with pytest.raises(GatewayError) as info:
        check_outputs(ADD, ["y", "z"])
    assert info.value.message == "unexpected inference output 'z' for model 'add.add_common'"


# --- the columnar conversion answers as the per-instance one ---------------------------------

V2_DTYPES = ("float32", "float16", "int8", "uint64", "bool")


def batching_model(dtype: str, row_shape: tuple[int, ...]) -> V2Model:
    inputs, outputs = (TensorSpec("x", dtype, row_shape),), (TensorSpec("y", dtype, row_shape),)
    return V2Model(
        "m", 1, (1,), MethodSignature("m", inputs, outputs, BatchPolicy(sizes=(1, 4))), 1
    )


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(V2_DTYPES),
    st.lists(st.integers(0, 3), max_size=2).map(tuple),
    st.integers(1, 20),
    st.sets(st.integers(0, 19)),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
)
def test_v2_columns_answer_as_instances_did(
    dtype: str,
    row_shape: tuple[int, ...],
    count: int,
    failing: set[int],
    job_size: int,
    seed: int,
) -> None:
    batch = np.random.default_rng(seed).integers(0, 100, (count, *row_shape)).astype(dtype)
    data = memoryview(batch.tobytes())
    model = batching_model(dtype, row_shape)
    (columns,) = to_columns(model, [V2Tensor("x", DTYPE_TO_V2[dtype], batch.shape, data)])
    assert columns.tensors["x"].data is data  # the request's buffer, not a copy
    rows = split([columns])
    assert len(rows) == count
    for row, instance in zip(batch, rows, strict=True):
        np.testing.assert_array_equal(from_wire(instance["x"]), row)
    failing &= set(range(count))

    def run(start: int, stop: int) -> Outcomes:  # a stand-in model echoing x as y
        return Outcomes.of(
            [
                Failure(ErrorKind.MODEL_ERROR, f"boom {start + i}")
                if start + i in failing
                else {"y": instance["x"]}
                for i, instance in enumerate(split(take_rows([columns], start, stop)))
            ]
        )

    answer = Outcomes.join(run(start, start + job_size) for start in range(0, count, job_size))
    if failing:
        first = min(failing)
        with pytest.raises(GatewayError) as info:
            to_outputs(model, answer)
        prefix = f"instance {first}: " if count > 1 else ""
        assert (info.value.kind, info.value.message) == (
            ErrorKind.MODEL_ERROR,
            f"{prefix}boom {first}",
        )
        return
    (y,) = to_outputs(model, answer)
    assert (y.name, y.datatype, y.shape, bytes(y.data)) == (
        "y",
        DTYPE_TO_V2[dtype],
        batch.shape,
        batch.tobytes(),
    )
