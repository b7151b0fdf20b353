"""The one tensor validation rule (`msq.proto.validation`), shared by broker and workers."""

from __future__ import annotations

import numpy as np
import pytest

from msq.proto.codec import BYTES, STRING, WireTensor, to_wire
from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, TensorSpec
from msq.proto.validation import check_columns, check_instance, input_mismatch, shape_matches


@pytest.mark.parametrize(
    ("shape", "expected", "matches"),
    [
        ((2, 2), (2, 2), True),
        ((2, 7), (2, -1), True),
        ((), (), True),
        ((4,), (2, 2), False),
        ((2, 2), (4,), False),
        ((2, 3), (2, 2), False),
        ((2, 2, 1), (2, -1), False),
        ((1,), (), False),
    ],
)
def test_shape_matches_dimension_by_dimension(
    shape: tuple[int, ...], expected: tuple[int, ...], matches: bool
) -> None:
    assert shape_matches(shape, expected) is matches


F32_2x2 = ("float32", (2, 2))


@pytest.mark.parametrize(
    ("tensor", "expected", "message"),
    [
        (("float32", (2, 2), 16), F32_2x2, None),
        (("float32", (2, 5), 40), ("float32", (2, -1)), None),
        (("float32", (3,), 12), (None, None), None),
        (("int32", (2, 2), 16), (None, (2, 2)), None),
        ((STRING, (), 5), (STRING, (1,)), None),
        ((BYTES, (1,), 3), (None, (2, 2)), None),
        (
            ("int32", (2, 2), 16),
            F32_2x2,
            "Given model input L data type int32 not match the data type float32 defined in model",
        ),
        (
            ("float32", (3,), 12),
            F32_2x2,
            "Given model input L size 12 not match the size 16 defined in model",
        ),
        (
            ("float32", (4,), 16),
            F32_2x2,
            "Given model input L shape [4] not match the shape [2, 2] defined in model",
        ),
        (
            ("float32", (1, 2, 2), 16),
            F32_2x2,
            "Given model input L shape [1, 2, 2] not match the shape [2, 2] defined in model",
        ),
        (
            ("float32", (3, 2), 24),
            ("float32", (-1, 3)),
            "Given model input L shape [3, 2] not match the shape [-1, 3] defined in model",
        ),
        (
            ("int8", (3,), 3),
            (None, (2, 2)),
            "Given model input L shape [3] not match the shape [2, 2] defined in model",
        ),
    ],
)
def test_input_mismatch(
    tensor: tuple[str, tuple[int, ...], int],
    expected: tuple[str | None, tuple[int, ...] | None],
    message: str | None,
) -> None:
    assert input_mismatch("L", tensor, expected) == message


def test_the_model_is_named_after_defined_in_model() -> None:
    problem = input_mismatch("1", ("float32", (4,), 16), F32_2x2, model="add.mindir")
    assert (
        problem
        == "Given model input 1 shape [4] not match the shape [2, 2] defined in model add.mindir"
    )


SPECS = (TensorSpec("x1", "float32", (2, 2)), TensorSpec("x2"))


#: x1 values that fail the rule for every protocol, and the message (MindSpore Serving's).
MISFITS: list[tuple[WireTensor | None, str]] = [
    (None, "Cannot find input x1 in instance input"),
    (
        to_wire(np.ones((2, 2), np.int32)),
        "Given model input x1 (index 0) data type int32 not match the data type float32 "
        "defined in model",
    ),
    (
        to_wire(np.ones((3, 2), np.float32)),
        "Given model input x1 (index 0) size 24 not match the size 16 defined in model",
    ),
    (
        to_wire(np.ones(4, np.float32)),
        "Given model input x1 (index 0) shape [4] not match the shape [2, 2] defined in model",
    ),
]


def test_check_instance_keeps_only_the_declared_inputs() -> None:
    x = to_wire(np.ones((2, 2), np.float32))
    assert check_instance({"x1": x, "x2": x, "extra": x}, SPECS) == {"x1": x, "x2": x}


@pytest.mark.parametrize(
    ("x1", "message"),
    [
        (
            WireTensor("float32", (2, 2), b"\x00" * 12),
            "Given model input x1 (index 0): data size 12 does not match shape [2, 2] of "
            "float32 (16 bytes)",
        ),
        *MISFITS,
    ],
)
def test_check_instance_fails_with_the_first_problem(x1: WireTensor | None, message: str) -> None:
    instance = {"x2": to_wire("any")} | ({} if x1 is None else {"x1": x1})
    assert check_instance(instance, SPECS) == Failure(ErrorKind.INVALID_INPUT, message)


@pytest.mark.parametrize("count", [1, 2, 5])
@pytest.mark.parametrize(
    ("x1", "message"),
    [
        (to_wire(np.ones((2, 2), np.float32)), None),
        *MISFITS,
    ],
)
def test_columns_fail_or_pass_as_each_of_their_rows_does(
    count: int, x1: WireTensor | None, message: str | None
) -> None:
    row = {"x2": to_wire(np.ones(3, np.float32)), "extra": to_wire(np.int8(1))}
    row |= {} if x1 is None else {"x1": x1}
    (part,) = stack([row] * count)
    expected = check_instance(row, SPECS)
    assert isinstance(expected, Failure) is (message is not None)
    checked = check_columns(part, SPECS)
    if message is None:
        assert checked == Columns(count, {"x1": part.tensors["x1"], "x2": part.tensors["x2"]})
    else:
        assert checked == expected == Failure(ErrorKind.INVALID_INPUT, message)


def test_a_malformed_instance_alone_in_its_columns_gets_its_own_message() -> None:
    bad = {"x1": WireTensor("float32", (2, 2), b"\x00" * 12), "x2": to_wire("any")}
    (part,) = stack([bad])
    assert (
        check_columns(part, SPECS)
        == check_instance(bad, SPECS)
        == Failure(
            ErrorKind.INVALID_INPUT,
            "Given model input x1 (index 0): data size 12 does not match shape [2, 2] of float32 "
            "(16 bytes)",
        )
    )


@pytest.mark.parametrize(
    ("part", "problem"),
    [
        (
            Columns(2, {"x1": WireTensor("float32", (3, 2, 2), b"\x00" * 48)}),
            "input x1: shape [3, 2, 2] does not have the 2 rows of its columns",
        ),
        (
            Columns(2, {"x1": WireTensor("float32", (2, 2, 2), b"\x00" * 16)}),
            "input x1: data size 16 does not match shape [2, 2, 2] of float32 (32 bytes)",
        ),
        (
            Columns(1, {"x1": WireTensor("float32", (2, 2), b"\x00" * 16)}),
            "input x1: shape [2, 2] does not have the 1 rows of its columns",
        ),
        (Columns(0, {"x1": WireTensor("float32", (0, 2, 2), b"")}), None),
    ],
)
def test_columns_that_do_not_stack_fail_clearly(part: Columns, problem: str | None) -> None:
    problem = problem or "columns must hold at least one instance, not 0"
    assert check_columns(part, (TensorSpec("x1", "float32", (2, 2)),)) == Failure(
        ErrorKind.INVALID_INPUT, f"Given model inputs do not stack: {problem}"
    )
