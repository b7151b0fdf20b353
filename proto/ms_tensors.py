"""MindSpore Serving's gRPC `Tensor` message <-> msq's `WireTensor`.

Shared by the gRPC gateway (requests in, results out) and the Python client (the reverse).
STRING and BYTES tensors carry their one element in `bytes_val`; numeric tensors carry raw
little-endian C-order bytes in `data`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from typing_extensions import Buffer

from msq.proto import ms_service_pb2 as pb
from msq.proto.codec import BYTES, STRING, CodecError, WireTensor, check_wire

#: MindSpore Serving `DataType` -> msq dtype.
DTYPE_OF_MS: Mapping[int, str] = {
    pb.MS_BOOL: "bool",
    pb.MS_INT8: "int8",
    pb.MS_UINT8: "uint8",
    pb.MS_INT16: "int16",
    pb.MS_UINT16: "uint16",
    pb.MS_INT32: "int32",
    pb.MS_UINT32: "uint32",
    pb.MS_INT64: "int64",
    pb.MS_UINT64: "uint64",
    pb.MS_FLOAT16: "float16",
    pb.MS_FLOAT32: "float32",
    pb.MS_FLOAT64: "float64",
    pb.MS_STRING: STRING,
    pb.MS_BYTES: BYTES,
}
#: msq dtype -> MindSpore Serving `DataType`.
MS_OF_DTYPE: Mapping[str, pb.DataType] = {
    dtype: cast("pb.DataType", ms) for ms, dtype in DTYPE_OF_MS.items()
}


def wire_tensor(
    dtype: int,
    dims: Sequence[int],
    data: Buffer,
    bytes_val: Sequence[Buffer],
    shared_memory: bool = False,
) -> WireTensor:
    """The wire tensor of a `Tensor` message's fields; raise `CodecError` when they are
    malformed. `shared_memory`: the message carried `shm_data`, which msq refuses."""
    if shared_memory:
        raise CodecError("shared-memory tensors are not supported")
    name = DTYPE_OF_MS.get(dtype)
    if name is None:
        raise CodecError(f"unknown data type {dtype}")
    if name in (STRING, BYTES):
        if len(bytes_val) != 1:
            raise CodecError(
                f"a {name} tensor holds exactly one element in bytes_val, not {len(bytes_val)}"
            )
        data = bytes_val[0]
    wire = WireTensor(name, tuple(dims), data)
    check_wire(wire)
    return wire


def from_ms_tensor(tensor: pb.Tensor) -> WireTensor:
    """The wire tensor of a `Tensor` message; raise `CodecError` when it is malformed."""
    return wire_tensor(
        tensor.dtype,
        tensor.shape.dims,
        tensor.data,
        tensor.bytes_val,
        tensor.WhichOneof("tensor_data") == "shm_data",
    )


def fill_ms_tensor(wire: WireTensor, tensor: pb.Tensor) -> None:
    """Write a wire tensor into an (empty) `Tensor` message."""
    tensor.dtype = MS_OF_DTYPE[wire.dtype]
    tensor.shape.dims.extend(wire.shape)
    data = wire.data if isinstance(wire.data, bytes) else bytes(wire.data)
    if wire.dtype in (STRING, BYTES):
        tensor.bytes_val.append(data)
    else:
        tensor.data = data
