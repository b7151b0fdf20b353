"""V2 datatypes <-> msq dtypes, and the Triton model-config data types."""

from __future__ import annotations

from collections.abc import Mapping

from msq.gateways.core.errors import GatewayError
from msq.proto.codec import BYTES, STRING
from msq.proto.errors import ErrorKind

#: The datatype shown for an input or output whose dtype the servable does not declare.
ANY_DATATYPE = ""

#: V2 datatype -> msq dtype. BYTES is msq `bytes` (or `str` where the servable declares it).
V2_TO_DTYPE: Mapping[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": BYTES,
}
DTYPE_TO_V2: Mapping[str, str] = {
    **{dtype: v2 for v2, dtype in V2_TO_DTYPE.items()},
    STRING: "BYTES",
}


def v2_datatype(dtype: str | None) -> str:
    """The V2 datatype of an msq dtype (`ANY_DATATYPE` when undeclared)."""
    return ANY_DATATYPE if dtype is None else DTYPE_TO_V2[dtype]


def msq_dtype(datatype: str, declared: str | None = None) -> str:
    """The msq dtype for a V2 datatype; BYTES becomes `str` where the servable declares `str`."""
    dtype = V2_TO_DTYPE.get(datatype)
    if dtype is None:
        raise GatewayError(ErrorKind.INVALID_INPUT, f"datatype {datatype!r} is not supported")
    return STRING if dtype == BYTES and declared == STRING else dtype


def config_datatype(dtype: str | None) -> str:
    """The Triton model-config data type (``TYPE_FP32``, ``TYPE_STRING`` for BYTES, ...)."""
    if dtype is None:
        return "TYPE_INVALID"
    datatype = DTYPE_TO_V2[dtype]
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"
