"""Unit tests of the V2 <-> msq datatype maps."""

from __future__ import annotations

import pytest

from msq.gateways.core.errors import GatewayError
from msq.gateways.v2.datatypes import (
    ANY_DATATYPE,
    DTYPE_TO_V2,
    V2_TO_DTYPE,
    config_datatype,
    msq_dtype,
    v2_datatype,
)
from msq.proto.codec import DTYPES
from msq.proto.errors import ErrorKind


def test_datatype_mapping_covers_every_msq_dtype_both_ways() -> None:
    assert set(DTYPE_TO_V2) == set(DTYPES)
    for datatype, dtype in V2_TO_DTYPE.items():
        assert v2_datatype(dtype) == datatype
        assert msq_dtype(datatype) == dtype
    assert v2_datatype("str") == "BYTES"
    assert v2_datatype("float16") == "FP16"
    assert v2_datatype(None) == ANY_DATATYPE
    assert msq_dtype("BYTES", declared="str") == "str"
    assert msq_dtype("BYTES", declared=None) == "bytes"
    assert msq_dtype("FP32", declared="str") == "float32"


@pytest.mark.parametrize("datatype", ["BF16", "FLOAT32", "fp32", ""])
def test_unsupported_datatype_is_invalid_input(datatype: str) -> None:
    with pytest.raises(GatewayError) as info:
        msq_dtype(datatype)
    assert info.value.kind is ErrorKind.INVALID_INPUT
    assert repr(datatype) in info.value.message


def test_config_datatypes_follow_triton() -> None:
    assert config_datatype("float32") == "TYPE_FP32"
    assert config_datatype("bytes") == "TYPE_STRING"
    assert config_datatype("str") == "TYPE_STRING"
    assert config_datatype("bool") == "TYPE_BOOL"
    assert config_datatype(None) == "TYPE_INVALID"
