"""Checks of an instance against a method's input specs, from tensor metadata alone."""

from __future__ import annotations

import math

import numpy as np

from msq.proto.codec import BYTES, STRING, CodecError, check_wire
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Instance, TensorSpec


def _shape_matches(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    return len(shape) == len(expected) and all(
        want in (-1, got) for got, want in zip(shape, expected, strict=True)
    )


def _check_input(index: int, spec: TensorSpec, instance: Instance) -> str | None:
    tensor = instance.get(spec.name)
    if tensor is None:
        return f"Cannot find input {spec.name} in instance input"
    try:
        check_wire(tensor)
    except CodecError as exc:
        return f"Given model input {spec.name} (index {index}): {exc}"
    if spec.dtype is not None and tensor.dtype != spec.dtype:
        return (
            f"Given model input {spec.name} (index {index}) data type {tensor.dtype} "
            f"not match the data type {spec.dtype} defined in model"
        )
    if (
        spec.shape is None
        or tensor.dtype in (STRING, BYTES)
        or _shape_matches(tensor.shape, spec.shape)
    ):
        return None
    if -1 not in spec.shape and spec.dtype is not None:
        expected = math.prod(spec.shape) * np.dtype(spec.dtype).itemsize
        if tensor.nbytes != expected:
            return (
                f"Given model input {spec.name} (index {index}) size {tensor.nbytes} "
                f"not match the size {expected} defined in model"
            )
    return (
        f"Given model input {spec.name} (index {index}) shape {list(tensor.shape)} "
        f"not match the shape {list(spec.shape)} defined in model"
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
