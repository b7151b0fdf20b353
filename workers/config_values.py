"""Checks of the values `servable_config.py` passes to `register`: names, input indices, the
msq extension's tensor types, and how many values each legacy `call_*` is assigned to.

Each check returns the value in its canonical form or raises `ServableConfigError` with a
message naming what is wrong.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from msq.proto.codec import BYTES, NUMERIC_DTYPES, STRING, numeric_name
from msq.proto.messages import TensorSpec
from msq.workers.definition import ServableConfigError

#: The dtype names a declared type may use, in the order messages list them.
DTYPE_NAMES = (*NUMERIC_DTYPES, STRING, BYTES)


def names(what: str, value: object) -> tuple[str, ...]:
    """A non-empty str or list of distinct non-empty str, as a tuple."""
    listed = (value,) if isinstance(value, str) else value
    if (
        not isinstance(listed, (list, tuple))
        or not listed
        or not all(isinstance(name, str) and name for name in listed)
    ):
        raise ServableConfigError(f"{what} must be a non-empty str or list of str, not {value!r}")
    if len(set(listed)) != len(listed):
        raise ServableConfigError(f"{what} must not repeat a name: {list(listed)}")
    return tuple(listed)


def indices(value: int | Sequence[int] | None) -> tuple[int, ...]:
    """`without_batch_dim_inputs`: an int >= 0 or a list of them, as a sorted tuple."""
    found = () if value is None else (value,) if isinstance(value, int) else value
    if not isinstance(found, (list, tuple)) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in found
    ):
        raise ServableConfigError(
            f"without_batch_dim_inputs must be an int >= 0 or a list of them, not {value!r}"
        )
    return tuple(sorted(set(found)))


def tensor_types(
    where: str, what: str, declared: Mapping[str, object] | None, allowed: tuple[str, ...]
) -> dict[str, TensorSpec]:
    """`input_types` / `output_types` of a method: name -> (dtype, shape), as `TensorSpec`s.

    `where` names the method in messages, `what` the argument, `allowed` the names it may type.
    A dtype is a name ("float32", "str", "bytes", ...), a NumPy dtype or type, or Python's
    `bool`, `int`, `float`, `str` or `bytes`; a shape is a list of ints (-1: any size; [] for
    a scalar) or None (any shape).
    """
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise ServableConfigError(
            f"{where}: {what} must be a dict of name -> (dtype, shape), not {declared!r}"
        )
    specs = {}
    for name, value in declared.items():
        if name not in allowed:
            raise ServableConfigError(
                f"{where}: {what} names {name!r}, which is not one of its names {list(allowed)}"
            )
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ServableConfigError(
                f"{where}: the type of {name!r} must be a pair (dtype, shape), not {value!r}"
            )
        dtype, shape = value
        specs[name] = TensorSpec(name, _dtype(where, name, dtype), _shape(where, name, shape))
    return specs


def _dtype(where: str, name: str, value: object) -> str:
    found: str | None = None
    if isinstance(value, str):
        found = value if value in DTYPE_NAMES else None
    elif value is str or value is bytes:
        found = STRING if value is str else BYTES
    elif value is not None:  # np.dtype(None) would be float64
        try:
            found = numeric_name(np.dtype(value))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            found = None
    if found is None:
        raise ServableConfigError(
            f"{where}: the dtype of {name!r} must be one of {', '.join(DTYPE_NAMES)} "
            f"(a name, a NumPy dtype or type), not {value!r}"
        )
    return found


def _shape(where: str, name: str, value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= -1 for dim in value
    ):
        raise ServableConfigError(
            f"{where}: the shape of {name!r} must be a list of ints >= -1 (-1: any size; "
            f"[]: a scalar) or None (any shape), not {value!r}"
        )
    return tuple(value)


def legacy_output_counts(func: Callable[..., Any]) -> dict[str, int]:
    """How many values each legacy `call_*` in the method's source is assigned to."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return {}
    counts: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            called = node.value.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            target = node.targets[0]
            if name.startswith("call_"):
                counts[name] = len(target.elts) if isinstance(target, (ast.Tuple, ast.List)) else 1
    return counts
