"""Python values <-> MindSpore Serving `Tensor` messages, with its client's conventions.

Inputs: NumPy arrays and scalars keep their dtype and shape; Python `bool`, `int` and `float`
become 1-element tensors of shape [1] (bool, int64, float64); `str` becomes a STRING and `bytes`
a BYTES tensor of shape [1]. Outputs: numeric tensors come back as (read-only) NumPy arrays,
STRING as `str` and BYTES as `bytes`.
"""

from __future__ import annotations

import numpy as np

from msq.proto import ms_service_pb2 as pb
from msq.proto.codec import BYTES, STRING, CodecError, Value, WireTensor, from_wire, to_wire
from msq.proto.ms_tensors import fill_ms_tensor, from_ms_tensor


def wire_value(value: object) -> WireTensor:
    """The wire tensor of one input value; raise `TypeError` for an unsupported value."""
    if isinstance(value, str):
        return WireTensor(STRING, (1,), value.encode("utf-8"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return WireTensor(BYTES, (1,), bytes(value))
    if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
        value = np.array([value])
    if not isinstance(value, (np.ndarray, np.generic)):
        raise TypeError(f"unsupported value type {type(value).__name__}")
    try:
        return to_wire(value)
    except CodecError as exc:
        raise TypeError(str(exc)) from None


def fill_instance(instance: pb.Instance, values: dict[str, object]) -> None:
    """Write one instance's inputs into an `Instance` message."""
    for name, value in values.items():
        if not isinstance(name, str):
            raise TypeError(f"input names must be str, not {type(name).__name__}")
        try:
            fill_ms_tensor(wire_value(value), instance.items[name])
        except TypeError as exc:
            raise TypeError(f"input {name}: {exc}") from None


def read_instance(instance: pb.Instance) -> dict[str, Value]:
    """One instance's outputs as values; raise `CodecError` when a tensor is malformed."""
    return {name: from_wire(from_ms_tensor(tensor)) for name, tensor in instance.items.items()}
