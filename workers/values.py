"""Values inside a worker: what Python stages see and return, and per-instance errors.

A value is a NumPy array (numeric, 0-d for scalars), a `str` (STRING) or `bytes` (BYTES).
Python stages see BYTES as a 1-D uint8 array, as in MindSpore Serving.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

from msq.proto.codec import numeric_name
from msq.proto.errors import ErrorKind, Failure

Value: TypeAlias = np.ndarray | str | bytes


class InstanceError(Exception):
    """One instance cannot be processed; it fails alone with this kind and message."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def failure(self) -> Failure:
        """This error as an instance outcome."""
        return Failure(self.kind, str(self))


def canonical(value: object, where: str) -> Value:
    """Convert a value returned by (or passed to) servable code to a worker value.

    Python bool/int/float become 0-d bool/int64/float64 arrays, NumPy scalars 0-d arrays,
    MindSpore tensors NumPy arrays; `where` names the code for the error message.
    """
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):
        return np.array(value, dtype=np.bool_)
    if isinstance(value, int):
        return np.array(value, dtype=np.int64)
    if isinstance(value, float):
        return np.array(value, dtype=np.float64)
    if isinstance(value, np.str_):
        return str(value)
    if hasattr(value, "asnumpy"):  # a mindspore.Tensor
        value = value.asnumpy()
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        if numeric_name(array.dtype) is not None:
            return array
        raise InstanceError(
            ErrorKind.MODEL_ERROR, f"{where} gave an array of unsupported data type {array.dtype}"
        )
    raise InstanceError(
        ErrorKind.MODEL_ERROR, f"{where} gave a value of unsupported type {type(value).__name__}"
    )


def stage_view(value: Value) -> np.ndarray | str:
    """The value as a Python stage sees it: BYTES as a 1-D uint8 array, arrays writable
    (values received are read-only views of their message; servable code may update them
    in place, as it could in MindSpore Serving)."""
    if isinstance(value, bytes):
        return np.frombuffer(bytearray(value), dtype=np.uint8)
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        return value.copy()
    return value
