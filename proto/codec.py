"""Zero-copy tensor codec: Python values <-> `WireTensor` (dtype, shape, raw bytes).

A `WireTensor` is what travels: the broker moves it between messages without looking at its
bytes; workers and gateways turn it into a value with `from_wire`, which returns a NumPy view
of the received buffer (no copy). Values are NumPy arrays and scalars, `str` (STRING) and
`bytes` (BYTES), as in MindSpore Serving.
"""

from __future__ import annotations

import math
from typing import NamedTuple, TypeAlias, cast

import numpy as np
from typing_extensions import Buffer

#: Numeric dtypes msq carries, by their NumPy names.
NUMERIC_DTYPES: tuple[str, ...] = (
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float16",
    "float32",
    "float64",
)
#: Name -> dtype and back; looking a dtype up here costs far less than `dtype.name`.
_DTYPES: dict[str, np.dtype[np.generic]] = {name: np.dtype(name) for name in NUMERIC_DTYPES}
_NAMES: dict[np.dtype[np.generic], str] = {dtype: name for name, dtype in _DTYPES.items()}
STRING = "str"
BYTES = "bytes"
DTYPES: frozenset[str] = frozenset(NUMERIC_DTYPES) | {STRING, BYTES}

#: Tensors at least this large travel as their own frame (handed to libzmq without a copy from
#: `msq.proto.transport.COPY_THRESHOLD_BYTES` on); smaller ones are inlined in the message
#: header, which costs less.
FRAME_THRESHOLD = 65536

Value: TypeAlias = np.ndarray | np.generic | str | bytes


class WireTensor(NamedTuple):
    """One tensor as it travels: its dtype name, its shape and its raw C-order bytes."""

    dtype: str
    shape: tuple[int, ...]
    data: Buffer

    @property
    def nbytes(self) -> int:
        """Length of the raw data in bytes."""
        data = self.data
        return len(data) if isinstance(data, bytes) else memoryview(data).nbytes


class CodecError(ValueError):
    """A value or a wire tensor that cannot be converted."""


def itemsize(dtype: str) -> int:
    """Bytes per element of a numeric dtype (by its msq name)."""
    return _DTYPES[dtype].itemsize


def numeric_name(dtype: np.dtype[np.generic]) -> str | None:
    """The msq name of a native-byte-order numeric dtype (None if msq does not carry it).

    A table look-up: much cheaper than `dtype.name`, which matters per instance.
    """
    return _NAMES.get(dtype)


def to_wire(value: object) -> WireTensor:
    """Convert a value to a `WireTensor`.

    NumPy arrays are made C-contiguous and little-endian first; large arrays are not copied
    when they already are. Python bool/int/float become 0-d bool/int64/float64 tensors.
    """
    if isinstance(value, str):
        return WireTensor(STRING, (), value.encode("utf-8"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return WireTensor(BYTES, (), bytes(value))
    if isinstance(value, bool):
        value = np.bool_(value)
    elif isinstance(value, int):
        value = np.int64(value)
    elif isinstance(value, float):
        value = np.float64(value)
    if not isinstance(value, (np.ndarray, np.generic)):
        raise CodecError(f"cannot send a value of type {type(value).__name__}")
    array = np.asarray(value)
    name = numeric_name(array.dtype)
    if name is None:
        little = array.dtype.newbyteorder("<")
        name = _NAMES.get(little) if array.dtype.byteorder == ">" else None
        if name is None:
            raise CodecError(f"unsupported data type {array.dtype}")
        array = array.astype(little)
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    # ndarray is a Buffer at run time; NumPy's stubs declare it only for Python >= 3.12.
    data = cast(Buffer, array) if array.nbytes >= FRAME_THRESHOLD else array.tobytes()
    return WireTensor(name, array.shape, data)


def check_wire(tensor: WireTensor) -> None:
    """Raise `CodecError` unless the tensor's dtype, shape and byte length agree."""
    if tensor.dtype not in DTYPES:
        raise CodecError(f"unknown data type {tensor.dtype!r}")
    if any(not isinstance(dim, int) or dim < 0 for dim in tensor.shape):
        raise CodecError(f"invalid shape {list(tensor.shape)}")
    if tensor.dtype in (STRING, BYTES):
        if math.prod(tensor.shape) != 1:
            raise CodecError(
                f"a {tensor.dtype} tensor holds exactly one element, shape [] or [1], "
                f"not {list(tensor.shape)}"
            )
        return
    expected = math.prod(tensor.shape) * _DTYPES[tensor.dtype].itemsize
    if tensor.nbytes != expected:
        raise CodecError(
            f"data size {tensor.nbytes} does not match shape {list(tensor.shape)} "
            f"of {tensor.dtype} ({expected} bytes)"
        )


def from_wire(tensor: WireTensor) -> Value:
    """Convert a `WireTensor` to a value: a NumPy view of its buffer, a `str` or `bytes`."""
    check_wire(tensor)
    if tensor.dtype == STRING:
        try:
            return bytes(tensor.data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"string tensor is not valid UTF-8: {exc}") from None
    if tensor.dtype == BYTES:
        return bytes(tensor.data)
    return np.frombuffer(memoryview(tensor.data), dtype=_DTYPES[tensor.dtype]).reshape(tensor.shape)
