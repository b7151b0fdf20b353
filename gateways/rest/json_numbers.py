"""The JSON number policy of both REST APIs (MindSpore Serving and V2), in both directions.

- **In**: a request body is strict JSON. The non-finite literals `NaN`, `Infinity` and
  `-Infinity` that Python's parser would accept are refused with `NonFiniteError`, which names
  the literal and where it is (a JSONPath such as `$.inputs[0].data[3]`).
- **Out**: float outputs that are NaN, +Inf or -Inf are written as the JSON strings `"NaN"`,
  `"Infinity"` and `"-Infinity"` (the protobuf JSON mapping's rule), so every reply is valid
  JSON that strict parsers read; `numpy.array(values, dtype)` reads the strings back exactly.
  Finite values are written as before.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

#: The JSON strings that stand for the non-finite float values in replies.
NAN = "NaN"
INFINITY = "Infinity"
NEGATIVE_INFINITY = "-Infinity"


class NonFiniteError(ValueError):
    """A request body holds a `NaN`/`Infinity`/`-Infinity` literal (not valid JSON)."""

    def __init__(self, literal: str, where: str | None) -> None:
        at = "" if where is None else f" at {where}"
        super().__init__(f"{literal}{at} is not valid JSON: non-finite numbers are refused")
        self.literal = literal
        self.where = where


class _Literal:
    """Stands for a non-finite literal while its place in the document is looked for."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _refuse(literal: str) -> object:
    raise NonFiniteError(literal, None)


_STRICT = json.JSONDecoder(parse_constant=_refuse)
_MARKING = json.JSONDecoder(parse_constant=_Literal)


def loads(body: bytes) -> Any:
    """`json.loads(body)` that refuses non-finite literals with `NonFiniteError`.

    Other errors are `json.loads`'s own (`ValueError`, `RecursionError`). Costs nothing over
    `json.loads` for a body without such literals.
    """
    text = body.decode(json.detect_encoding(body), "surrogatepass")
    try:
        return _STRICT.decode(text)
    except NonFiniteError as unplaced:
        try:
            document = _MARKING.decode(text)
        except (ValueError, RecursionError):  # malformed after the literal: no place to name
            raise unplaced from None
        raise _locate(document) or unplaced from None


def _locate(document: object) -> NonFiniteError | None:
    """The error naming the first non-finite literal of `document`, in document order."""
    stack: list[tuple[str, object]] = [("$", document)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, _Literal):
            return NonFiniteError(node.literal, where)
        if isinstance(node, dict):
            children = [(f"{where}{_member(key)}", value) for key, value in node.items()]
        elif isinstance(node, list):
            children = [(f"{where}[{index}]", value) for index, value in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def _member(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key, ensure_ascii=False)}]"


def json_values(array: np.ndarray) -> Any:
    """`array.tolist()`, with non-finite floats as `"NaN"`, `"Infinity"`, `"-Infinity"`.

    Only float arrays are checked, with one vectorised test; all-finite arrays take the plain
    `tolist()` path.
    """
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return array.tolist()
    values = array.astype(object)
    values[np.isnan(array)] = NAN
    values[np.isposinf(array)] = INFINITY
    values[np.isneginf(array)] = NEGATIVE_INFINITY
    return values.tolist()
