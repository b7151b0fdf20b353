"""V2 tensors <-> msq columns, shared by the gRPC and the REST gateway.

A V2 request carries one tensor per input (a whole batch when the model batches); msq carries
its batch rows as `Columns` (one row per instance). `to_columns` keeps numeric inputs whole,
without copying, and `to_outputs` turns the answer's output columns back into V2 tensors
(without copying when one column holds every row).
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
from msq.proto.columns import Outcomes, slice_columns
from msq.proto.errors import ErrorKind
from msq.proto.messages import Columns
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


def to_columns(model: V2Model, inputs: Sequence[V2Tensor]) -> list[Columns]:
    """Turn V2 inputs into msq columns: one row per batch row when the model batches, else one.

    Numeric inputs are not copied: each column's data is the input's own buffer. An input of
    STRING or BYTES rows makes every row travel alone (such values are never stacked), as
    views of the same buffers.
    """
    specs = {spec.name: spec for spec in model.method.inputs}
    columns: dict[str, WireTensor | list[WireTensor]] = {}
    for tensor in inputs:
        spec = specs.get(tensor.name)
        if spec is None:
            raise GatewayError(
                ErrorKind.INVALID_INPUT,
                f"unexpected inference input {tensor.name!r} for model {model.name!r}",
            )
        if tensor.name in columns:
            raise GatewayError(ErrorKind.INVALID_INPUT, f"input {tensor.name!r} is given twice")
        columns[tensor.name] = _column(tensor, msq_dtype(tensor.datatype, spec.dtype), model)
    for spec in model.method.inputs:
        if spec.name not in columns:
            raise GatewayError(ErrorKind.INVALID_INPUT, missing_input(spec.name))
    counts = {len(c) if isinstance(c, list) else c.shape[0] for c in columns.values()}
    if len(counts) > 1:
        raise GatewayError(ErrorKind.INVALID_INPUT, "inputs have different batch sizes (dim 0)")
    count = counts.pop() if counts else 1
    numeric = Columns(count, {n: c for n, c in columns.items() if isinstance(c, WireTensor)})
    if len(numeric.tensors) == len(columns):
        return [numeric]
    rows = [slice_columns(numeric, row, row + 1).tensors for row in range(count)]
    return [
        Columns(1, {n: c[row] if isinstance(c, list) else rows[row][n] for n, c in columns.items()})
        for row in range(count)
    ]


def _column(tensor: V2Tensor, dtype: str, model: V2Model) -> WireTensor | list[WireTensor]:
    """One input, checked against its shape: a numeric column of shape (rows, *row_shape)
    whose data is the input's buffer, or the one-row columns of a STRING or BYTES input."""
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
        return _bytes_column(tensor, dtype, count, row_shape)
    if isinstance(tensor.data, list):
        raise GatewayError(ErrorKind.INVALID_INPUT, f"input {tensor.name!r} is not BYTES")
    size = memoryview(tensor.data).nbytes
    row_bytes = math.prod(row_shape) * np.dtype(dtype).itemsize
    if size != count * row_bytes:
        raise GatewayError(
            ErrorKind.INVALID_INPUT,
            f"input {tensor.name!r}: {size} bytes do not match shape {list(shape)} "
            f"of {tensor.datatype} ({count * row_bytes} bytes)",
        )
    return WireTensor(dtype, (count, *row_shape), tensor.data)


def _bytes_column(
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
    return [WireTensor(dtype, (1, *row_shape), element) for element in elements[:count]]


def check_outputs(model: V2Model, requested: Iterable[str]) -> None:
    """Raise INVALID_INPUT for a requested output the model does not have."""
    names = {spec.name for spec in model.method.outputs}
    for name in requested:
        if name not in names:
            raise GatewayError(
                ErrorKind.INVALID_INPUT,
                f"unexpected inference output {name!r} for model {model.name!r}",
            )


def to_outputs(model: V2Model, outcomes: Outcomes, requested: Sequence[str] = ()) -> list[V2Tensor]:
    """The rows' outputs as V2 tensors (the requested ones, else all): a column's own buffer
    when one column holds every row, else the columns concatenated once.

    Any failed instance fails the whole V2 request with its error (V2 has no partial results).
    """
    if outcomes.failures:
        first = outcomes.failures[0]
        prefix = f"instance {first.row}: " if outcomes.count > 1 else ""
        raise GatewayError(first.failure.kind, prefix + first.failure.message)
    if not outcomes.columns:
        raise GatewayError(ErrorKind.INTERNAL, "the model returned no instances")
    parts = outcomes.columns
    names = (
        list(requested) or [spec.name for spec in model.method.outputs] or list(parts[0].tensors)
    )
    return [_output(name, [part.tensors.get(name) for part in parts], model) for name in names]


def _output(name: str, parts: list[WireTensor | None], model: V2Model) -> V2Tensor:
    """One output from its columns (each of shape (rows, *row_shape))."""
    first = parts[0]
    if first is None or any(
        t is None or t.dtype != first.dtype or t.shape[1:] != first.shape[1:] for t in parts
    ):
        raise GatewayError(
            ErrorKind.INTERNAL, f"output {name!r} differs in dtype or shape between instances"
        )
    tensors = [t for t in parts if t is not None]
    count = sum(t.shape[0] for t in tensors)
    shape = (count, *first.shape[1:]) if model.max_batch_size else first.shape[1:]
    datatype = DTYPE_TO_V2[first.dtype]
    if datatype == "BYTES":
        return V2Tensor(name, datatype, shape, [bytes(t.data) for t in tensors])
    if len(tensors) == 1:
        return V2Tensor(name, datatype, shape, first.data)
    return V2Tensor(name, datatype, shape, b"".join(memoryview(t.data).cast("B") for t in tensors))
