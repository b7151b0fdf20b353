"""The JSON number policy of both REST APIs: non-finite literals refused, non-finite outputs
written as strings."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from msq.gateways.rest.json_numbers import NonFiniteError, json_values, loads

LITERALS = ["NaN", "Infinity", "-Infinity"]
FLOATS = [np.float16, np.float32, np.float64]


def _no_constant(name: str) -> object:
    raise AssertionError(f"{name} is not valid JSON")


def strict_loads(data: bytes) -> Any:
    """Parse as strict parsers (browsers, Go, Java) do: no NaN/Infinity literals."""
    return json.loads(data, parse_constant=_no_constant)


@pytest.mark.parametrize("literal", LITERALS)
@pytest.mark.parametrize(
    ("template", "where"),
    [
        ("{}", "$"),
        ('{{"instances": {{"x": {}}}}}', "$.instances.x"),
        ('{{"inputs": [{{"data": [[1, 2], [3, {}]]}}]}}', "$.inputs[0].data[1][1]"),
        ('{{"a b": [0, {{"é": {}}}]}}', '$["a b"][1].é'),
        ('{{"1": {}}}', '$["1"]'),
    ],
)
def test_a_non_finite_literal_is_refused_naming_where(
    literal: str, template: str, where: str
) -> None:
    with pytest.raises(NonFiniteError) as info:
        loads(template.format(literal).encode())
    message = f"{literal} at {where} is not valid JSON: non-finite numbers are refused"
    assert str(info.value) == message
    assert (info.value.literal, info.value.where) == (literal, where)


def test_the_first_literal_in_document_order_is_named() -> None:
    with pytest.raises(NonFiniteError, match=r"^-Infinity at \$\.a\[0\]\.b "):
        loads(b'{"a": [{"b": -Infinity, "c": NaN}], "d": Infinity}')


@pytest.mark.parametrize("raw", [b'{"x": [NaN, 1', b'{"x": NaN, "x": 1}'])
def test_a_literal_whose_place_is_lost_is_named_without_it(raw: bytes) -> None:
    with pytest.raises(NonFiniteError) as info:
        loads(raw)
    assert str(info.value) == "NaN is not valid JSON: non-finite numbers are refused"


@pytest.mark.parametrize("raw", [b'{"x": [1, 2}', b"", b"[" * 100_000, b'{"x": nan}'])
def test_other_bad_bodies_raise_what_json_loads_raises(raw: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)) as mine:
        loads(raw)
    assert not isinstance(mine.value, NonFiniteError)
    with pytest.raises(type(mine.value)):
        json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x": [1, -2.5e3, 1e999, "NaN", true, null]}',
        '{"é": "\\u00e9"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"bom": 1}',
    ],
)
def test_bodies_without_literals_decode_as_json_loads_does(raw: bytes) -> None:
    assert loads(raw) == json.loads(raw)


@pytest.mark.parametrize("dtype", FLOATS)
def test_non_finite_floats_become_strings_in_nested_arrays(dtype: type) -> None:
    array = np.array([[np.nan, 1.5], [np.inf, -np.inf]], dtype)
    values = json_values(array)
    assert values == [["NaN", 1.5], ["Infinity", "-Infinity"]]
    assert strict_loads(json.dumps(values, allow_nan=False).encode()) == values
    np.testing.assert_array_equal(np.array(values, dtype), array)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("value", "expected"), [(np.nan, "NaN"), (np.inf, "Infinity"), (-np.inf, "-Infinity")]
)
def test_non_finite_float_scalars_become_strings(dtype: type, value: float, expected: str) -> None:
    assert json_values(np.array(value, dtype)) == expected


@given(
    hnp.arrays(
        st.sampled_from([np.dtype(d) for d in FLOATS] + [np.dtype("int32"), np.dtype("bool")]),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
)
def test_every_other_value_is_what_tolist_gives(array: np.ndarray) -> None:
    values = json_values(array)
    finite = array.dtype.kind != "f" or bool(np.isfinite(array).all())
    if finite:
        assert json.dumps(values) == json.dumps(array.tolist())
    else:
        np.testing.assert_array_equal(np.array(values, array.dtype), array)
        strict_loads(json.dumps(values, allow_nan=False).encode())
