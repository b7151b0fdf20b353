"""The one rule for a tensor against a declared input, used by the broker and the workers.

A tensor fits a declared input when its dtype is the declared one and its shape matches the
declared shape dimension by dimension (-1 matches any size). MindSpore Serving checked only
the byte size; msq checks the shape too and never reshapes. A STRING or BYTES tensor is
checked for its dtype only. The messages keep MindSpore Serving's wording: the byte-size
message when the size differs, the shape message when only the shape does.

Stacked instances (`Columns`) share dtypes and per-row shapes, so the rule checks them all at
once (`check_columns`): the verdict, and its message, are those of each of their rows.
"""

from __future__ import annotations

import math

import numpy as np

from msq.proto import columns
from msq.proto.codec import BYTES, STRING, CodecError, WireTensor, check_wire
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Instance, TensorSpec

Shape = tuple[int, ...]


def shape_matches(shape: Shape, expected: Shape) -> bool:
    """Whether `shape` has the rank of `expected` and its sizes, -1 matching any size."""
    return shape == expected or (
        len(shape) == len(expected)
        and all(want in (-1, got) for got, want in zip(shape, expected, strict=True))
    )


def missing_input(name: str) -> str:
    """The message for an instance without the declared input `name` (MindSpore Serving's)."""
    return f"Cannot find input {name} in instance input"


def input_mismatch(
    label: str,
    tensor: tuple[str, Shape, int],
    expected: tuple[str | None, Shape | None],
    model: str = "",
) -> str | None:
    """Why a tensor (dtype, shape, byte size) does not fit a declared input, or None.

    `expected` is the declared (dtype, shape), None meaning any; `label` names the input in
    the message ("x1 (index 0)" or "1") and `model` the model after "defined in model".
    """
    dtype, shape, nbytes = tensor
    want_dtype, want_shape = expected
    if want_dtype is not None and dtype != want_dtype:
        problem = f"data type {dtype} not match the data type {want_dtype}"
    elif want_shape is None or dtype in (STRING, BYTES) or shape_matches(shape, want_shape):
        return None
    elif (
        want_dtype is not None
        and -1 not in want_shape
        and nbytes != (size := math.prod(want_shape) * np.dtype(want_dtype).itemsize)
    ):
        problem = f"size {nbytes} not match the size {size}"
    else:
        problem = f"shape {list(shape)} not match the shape {list(want_shape)}"
    return f"Given model input {label} {problem} defined in model{f' {model}' if model else ''}"


def _label(index: int, spec: TensorSpec) -> str:
    return f"{spec.name} (index {index})"


def _check_input(index: int, spec: TensorSpec, instance: Instance) -> str | None:
    tensor = instance.get(spec.name)
    if tensor is None:
        return missing_input(spec.name)
    label = _label(index, spec)
    try:
        check_wire(tensor)
    except CodecError as exc:
        return f"Given model input {label}: {exc}"
    return input_mismatch(
        label, (tensor.dtype, tensor.shape, tensor.nbytes), (spec.dtype, spec.shape)
    )


def check_instance(instance: Instance, inputs: tuple[TensorSpec, ...]) -> Failure | Instance:
    """Validate an instance; return the instance reduced to the declared inputs, or a Failure.

    Extra items are dropped (MindSpore Serving ignores them), so they never travel to workers.
    """
    for index, spec in enumerate(inputs):
        problem = _check_input(index, spec, instance)
        if problem is not None:
            return Failure(ErrorKind.INVALID_INPUT, problem)
    return {spec.name: instance[spec.name] for spec in inputs}


def check_columns(part: Columns, inputs: tuple[TensorSpec, ...]) -> Failure | Columns:
    """Validate every row of `part` at once; return the columns reduced to the declared
    inputs, or the Failure of each of its rows (the message `check_instance` gives a row).

    A one-row column is checked as its instance, so a malformed instance gets the message it
    gets alone; the declared inputs of more rows must first stack
    (`msq.proto.columns.check_columns`: each holds the rows, its bytes match its shape).
    """
    declared: dict[str, WireTensor] = {}
    for spec in inputs:
        tensor = part.tensors.get(spec.name)
        if tensor is None:
            return Failure(ErrorKind.INVALID_INPUT, missing_input(spec.name))
        declared[spec.name] = tensor
    reduced = Columns(part.count, declared)
    if part.count == 1 and all(tensor.shape[:1] == (1,) for tensor in declared.values()):
        checked = check_instance(columns.split([reduced])[0], inputs)
        return checked if isinstance(checked, Failure) else reduced
    problem = columns.check_columns(reduced)
    if problem is not None:
        return Failure(ErrorKind.INVALID_INPUT, f"Given model inputs do not stack: {problem}")
    for index, spec in enumerate(inputs):
        tensor = declared[spec.name]
        row = (tensor.dtype, tensor.shape[1:], tensor.nbytes // part.count)
        mismatch = input_mismatch(_label(index, spec), row, (spec.dtype, spec.shape))
        if mismatch is not None:
            return Failure(ErrorKind.INVALID_INPUT, mismatch)
    return reduced
