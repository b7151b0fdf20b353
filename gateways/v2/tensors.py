"""V2 tensors <-> msq instances, shared by the gRPC and the REST gateway.

A V2 request carries one tensor per input (a whole batch when the model batches); msq
carries one instance per batch row. `to_instances` splits without copying numeric bytes,
`to_outputs` stacks the instances' outputs back.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from typing_extensions import Buffer

from msq.gateways.core.errors import GatewayError
from msq.gateways.v2.datatypes import DTYPE_TO_V2, msq_dtype
from msq.gateways.v2.models import V2Model
from msq.proto.codec import BYTES, STRING, WireTensor
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Instance, InstanceOutcome
from msq.proto.validation import missing_input


def pack_bytes(elements: Iterable[bytes]) -> bytes:
    """V2's binary BYTES layout: each element as a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(element)) + element for element in elements)


def unpack_bytes(raw: Buffer) -> list[bytes]:
    """Split V2's binary BYTES layout into its elements."""
    view = memoryview(raw).cast("B")
    elements: list[bytes] = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise GatewayError(ErrorKind.INVALID_INPUT, "truncated length prefix in BYTES data")
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > len(view):
            raise GatewayError(ErrorKind.INVALID_INPUT, "BYTES element longer than the data")
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    return elements


@dataclass(frozen=True, slots=True)
class V2Tensor:
    """A V2 tensor: numeric data as raw little-endian C-order bytes, BYTES as its elements."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Buffer | list[bytes]


def to_instances(model: V2Model, inputs: Sequence[V2Tensor]) -> list[Instance]:
    """Turn V2 inputs into msq instances (one per batch row when the model batches).

    Numeric rows are zero-copy memoryview slices of the input bytes.
    """
    specs = {spec.name: spec for spec in model.method.inputs}
    columns: dict[str, list[WireTensor]] = {}
    for tensor in inputs:
        spec = specs.get(tensor.name)
        if spec is None:
            raise GatewayError(
                ErrorKind.INVALID_INPUT,
                f"unexpected inference input {tensor.name!r} for model {model.name!r}",
            )
        if tensor.name in columns:
            raise GatewayError(ErrorKind.INVALID_INPUT, f"input {tensor.name!r} is given twice")
        columns[tensor.name] = _rows(tensor, msq_dtype(tensor.datatype, spec.dtype), model)
    for spec in model.method.inputs:
        if spec.name not in columns:
            raise GatewayError(ErrorKind.INVALID_INPUT, missing_input(spec.name))
    counts = {len(rows) for rows in columns.values()}
    if len(counts) > 1:
        raise GatewayError(ErrorKind.INVALID_INPUT, "inputs have different batch sizes (dim 0)")
    count = counts.pop() if counts else 1
    return [{name: rows[i] for name, rows in columns.items()} for i in range(count)]


def _rows(tensor: V2Tensor, dtype: str, model: V2Model) -> list[WireTensor]:
    """One input split into per-instance wire tensors."""
    shape = tensor.shape
    if any(dim < 0 for dim in shape):
        raise GatewayError(
            ErrorKind.INVALID_INPUT, f"input {tensor.name!r} has shape {list(shape)}"
        )
    batched = bool(model.max_batch_size)
    if batched and not shape:
        raise GatewayError(
            ErrorKind.INVALID_INPUT,
            f"input {tensor.name!r} of model {model.name!r} needs a batch dimension first",
        )
    count, row_shape = (shape[0], shape[1:]) if batched else (1, shape)
    if count == 0:
        raise GatewayError(ErrorKind.INVALID_INPUT, f"input {tensor.name!r} has a batch of size 0")
    if dtype in (STRING, BYTES):
        return _bytes_rows(tensor, dtype, count, row_shape)
    if isinstance(tensor.data, list):
        raise GatewayError(ErrorKind.INVALID_INPUT, f"input {tensor.name!r} is not BYTES")
    view = memoryview(tensor.data).cast("B")
    row_bytes = math.prod(row_shape) * np.dtype(dtype).itemsize
    if len(view) != count * row_bytes:
        raise GatewayError(
            ErrorKind.INVALID_INPUT,
            f"input {tensor.name!r}: {len(view)} bytes do not match shape {list(shape)} "
            f"of {tensor.datatype} ({count * row_bytes} bytes)",
        )
    if count == 1:
        return [WireTensor(dtype, row_shape, tensor.data)]
    return [
        WireTensor(dtype, row_shape, view[i * row_bytes : (i + 1) * row_bytes])
        for i in range(count)
    ]


def _bytes_rows(
    tensor: V2Tensor, dtype: str, count: int, row_shape: tuple[int, ...]
) -> list[WireTensor]:
    elements = tensor.data if isinstance(tensor.data, list) else unpack_bytes(tensor.data)
    if len(elements) != math.prod(tensor.shape):
        raise GatewayError(
            ErrorKind.INVALID_INPUT,
            f"input {tensor.name!r}: {len(elements)} BYTES elements do not match shape "
            f"{list(tensor.shape)}",
        )
    if math.prod(row_shape) != 1:
        raise GatewayError(
            ErrorKind.INVALID_INPUT,
            f"input {tensor.name!r}: a BYTES input holds one element per instance, not shape "
            f"{list(row_shape)}",
        )
    return [WireTensor(dtype, row_shape, element) for element in elements[:count]]


def check_outputs(model: V2Model, requested: Iterable[str]) -> None:
    """Raise INVALID_INPUT for a requested output the model does not have."""
    names = {spec.name for spec in model.method.outputs}
    for name in requested:
        if name not in names:
            raise GatewayError(
                ErrorKind.INVALID_INPUT,
                f"unexpected inference output {name!r} for model {model.name!r}",
            )


def to_outputs(
    model: V2Model, outcomes: Sequence[InstanceOutcome], requested: Sequence[str] = ()
) -> list[V2Tensor]:
    """Stack the instances' outputs into V2 tensors (the requested ones, else all).

    Any failed instance fails the whole V2 request with its error (V2 has no partial results).
    """
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Failure):
            prefix = f"instance {index}: " if len(outcomes) > 1 else ""
            raise GatewayError(outcome.kind, prefix + outcome.message)
    instances = [outcome for outcome in outcomes if not isinstance(outcome, Failure)]
    if not instances:
        raise GatewayError(ErrorKind.INTERNAL, "the model returned no instances")
    names = list(requested) or [spec.name for spec in model.method.outputs] or list(instances[0])
    return [_stack(name, [instance.get(name) for instance in instances], model) for name in names]


def _stack(name: str, column: list[WireTensor | None], model: V2Model) -> V2Tensor:
    first = column[0]
    if first is None or any(
        t is None or t.dtype != first.dtype or t.shape != first.shape for t in column
    ):
        raise GatewayError(
            ErrorKind.INTERNAL, f"output {name!r} differs in dtype or shape between instances"
        )
    rows = [t for t in column if t is not None]
    shape = (len(rows), *first.shape) if model.max_batch_size else first.shape
    datatype = DTYPE_TO_V2[first.dtype]
    if datatype == "BYTES":
        return V2Tensor(name, datatype, shape, [bytes(t.data) for t in rows])
    data = first.data if len(rows) == 1 else b"".join(memoryview(t.data).cast("B") for t in rows)
    return V2Tensor(name, datatype, shape, data)
