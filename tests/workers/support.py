"""Helpers of the worker tests: instances as they travel, outcomes as values."""

from __future__ import annotations

import numpy as np

from msq.proto.codec import WireTensor, from_wire, to_wire
from msq.proto.errors import Failure
from msq.proto.messages import InstanceOutcome

Outcome = dict[str, object] | Failure


def encode(instance: dict[str, object]) -> dict[str, WireTensor]:
    """An instance of values as it arrives from the broker."""
    return {name: to_wire(value) for name, value in instance.items()}


def decode(outcome: InstanceOutcome) -> Outcome:
    """An outcome with its tensors as values (a Failure stays as it is)."""
    if isinstance(outcome, Failure):
        return outcome
    return {name: from_wire(tensor) for name, tensor in outcome.items()}


def f32(*shape: int, value: float = 0.0) -> np.ndarray:
    """A float32 array of `shape` filled with `value`."""
    return np.full(shape, value, dtype=np.float32)
