"""Declared method types (`register_method(input_types=..., output_types=...)`): their checks
at import, how they merge with what model stages determine, and the worker's check of declared
outputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import TensorSpec
from msq.workers import register
from msq.workers.definition import ServableConfigError, ServableDef, ServableLoadError, collecting
from msq.workers.servable import load_servable
from msq.workers.signature import unify
from tests.workers.support import decode, encode, f32
from tests.workers.test_servable_loading import make_servable

DTYPES = (
    "bool, int8, uint8, int16, uint16, int32, uint32, int64, uint64, float16, float32, float64, "
    "str, bytes"
)


@pytest.fixture
def servable() -> Iterator[ServableDef]:
    with collecting("test") as definition:
        yield definition


def identity(x):
    return x


def test_declared_types_in_every_accepted_form(servable: ServableDef) -> None:
    @register.register_method(
        output_names=["y", "n", "s", "b", "f"],
        input_types={"x": ("float32", [8, -1]), "t": (np.int64, None)},
        output_types={
            "y": (np.dtype("float32"), (8, -1)),
            "n": (int, []),
            "s": (str, [1]),
            "b": (bytes, []),
            "f": (np.float16, [3]),
        },
    )
    def typed(x, t):
        y = register.add_stage(identity, x)
        return y, t, t, t, t

    method = servable.methods["typed"]
    assert method.input_types == {
        "x": TensorSpec("x", "float32", (8, -1)),
        "t": TensorSpec("t", "int64", None),
    }
    assert method.output_types == {
        "y": TensorSpec("y", "float32", (8, -1)),
        "n": TensorSpec("n", "int64", ()),
        "s": TensorSpec("s", "str", (1,)),
        "b": TensorSpec("b", "bytes", ()),
        "f": TensorSpec("f", "float16", (3,)),
    }


@pytest.mark.parametrize(
    ("input_types", "output_types", "message"),
    [
        (
            {"pixel": ("float32", [8, 8])},
            None,
            "method 'm': input_types names 'pixel', which is not one of its names ['pixels']",
        ),
        (
            None,
            {"labels": ("int64", [])},
            "method 'm': output_types names 'labels', which is not one of its names ['label']",
        ),
        (
            [("pixels", "float32")],
            None,
            "method 'm': input_types must be a dict of name -> (dtype, shape), not "
            "[('pixels', 'float32')]",
        ),
        (
            {"pixels": "float32"},
            None,
            "method 'm': the type of 'pixels' must be a pair (dtype, shape), not 'float32'",
        ),
        (
            {"pixels": ("float", [8, 8])},
            None,
            f"method 'm': the dtype of 'pixels' must be one of {DTYPES} (a name, a NumPy dtype "
            "or type), not 'float'",
        ),
        (
            {"pixels": (None, [8, 8])},
            None,
            f"method 'm': the dtype of 'pixels' must be one of {DTYPES} (a name, a NumPy dtype "
            "or type), not None",
        ),
        (
            {"pixels": (object, [8, 8])},
            None,
            f"method 'm': the dtype of 'pixels' must be one of {DTYPES} (a name, a NumPy dtype "
            "or type), not <class 'object'>",
        ),
        (
            {"pixels": ("float32", [8, -2])},
            None,
            "method 'm': the shape of 'pixels' must be a list of ints >= -1 (-1: any size; "
            "[]: a scalar) or None (any shape), not [8, -2]",
        ),
        (
            None,
            {"label": ("int64", 3)},
            "method 'm': the shape of 'label' must be a list of ints >= -1 (-1: any size; "
            "[]: a scalar) or None (any shape), not 3",
        ),
        (
            None,
            {"label": ("int64", [True])},
            "method 'm': the shape of 'label' must be a list of ints >= -1 (-1: any size; "
            "[]: a scalar) or None (any shape), not [True]",
        ),
    ],
)
def test_bad_declarations_fail_at_import_naming_the_method(
    servable: ServableDef, input_types: object, output_types: object, message: str
) -> None:
    def m(pixels):
        return pixels

    decorate = register.register_method(
        output_names=["label"],
        input_types=input_types,  # type: ignore[arg-type]
        output_types=output_types,  # type: ignore[arg-type]
    )
    with pytest.raises(ServableConfigError, match=re.escape(message)):
        decorate(m)
    assert "m" not in servable.methods


@pytest.mark.parametrize(
    ("declared", "found", "expected"),
    [
        (None, TensorSpec("x", "float32", (2, 2)), TensorSpec("x", "float32", (2, 2))),
        (TensorSpec("x", "float32", (8, 8)), TensorSpec("x"), TensorSpec("x", "float32", (8, 8))),
        (
            TensorSpec("x", "float32", (-1, 3)),
            TensorSpec("x", "float32", (4, -1)),
            TensorSpec("x", "float32", (4, 3)),
        ),
        (
            TensorSpec("x", "float32", None),
            TensorSpec("x", "float32", (2, -1)),
            TensorSpec("x", "float32", (2, -1)),
        ),
    ],
)
def test_declared_and_model_types_merge_to_the_more_precise(
    declared: TensorSpec | None, found: TensorSpec, expected: TensorSpec
) -> None:
    assert unify("method 'm' input 'x'", declared, found, "stage 1 (model a.mindir) takes") == (
        expected
    )


@pytest.mark.parametrize(
    ("declared", "found", "words"),
    [
        (TensorSpec("x", "float64", (2, 2)), TensorSpec("x", "float32", (2, 2)), "float64 [2, 2]"),
        (TensorSpec("x", "float32", (2,)), TensorSpec("x", "float32", (2, 2)), "float32 [2]"),
        (TensorSpec("x", "float32", (2, 3)), TensorSpec("x", "float32", (2, 2)), "float32 [2, 3]"),
    ],
)
def test_declared_types_that_contradict_the_model_fail(
    declared: TensorSpec, found: TensorSpec, words: str
) -> None:
    message = (
        f"method 'm' input 'x' is declared {words} but stage 1 (model a.mindir) takes "
        "float32 [2, 2]"
    )
    with pytest.raises(ServableLoadError, match=re.escape(message)):
        unify("method 'm' input 'x'", declared, found, "stage 1 (model a.mindir) takes")


TYPED_CONFIG = """
import numpy as np
from msq.workers import register
add = register.declare_model("add_dyn.mindir", "MindIR")

def total(y):
    return np.float64(y.sum())

@register.register_method(
    output_names=["y", "total", "x1"],
    input_types={{"x2": ("float32", [2, -1])}},
    output_types={{"total": ("{total}", []), "x1": ("float32", [2, 2])}},
)
def add_common(x1, x2):
    y = register.add_stage(add, x1, x2)
    return y, register.add_stage(total, y), x1
"""


def test_signature_merges_declared_and_model_types_and_workers_check_declared_outputs(
    tmp_path: Path, servable_dir: Path
) -> None:
    add = {"add_dyn.mindir": servable_dir / "pipes" / "1" / "add_dyn.mindir"}
    for total in ("float64", "float32"):
        make_servable(tmp_path / total, "m", TYPED_CONFIG.format(total=total), add)
    loaded = load_servable(tmp_path / "float64", "m")
    (signature,) = loaded.signatures
    assert signature.inputs == (
        TensorSpec("x1", "float32", (2, 2)),
        TensorSpec("x2", "float32", (2, 2)),
    )
    assert signature.outputs == (
        TensorSpec("y", "float32", (2, 2)),
        TensorSpec("total", "float64", ()),
        TensorSpec("x1", "float32", (2, 2)),
    )
    instance = encode({"x1": f32(2, 2, value=1.0), "x2": f32(2, 2, value=2.0)})
    (outcome,) = map(decode, loaded.methods["add_common"].run(stack([instance])).rows())
    assert isinstance(outcome, dict)
    assert outcome["total"] == 12.0
    wrong = load_servable(tmp_path / "float32", "m")
    (failed,) = wrong.methods["add_common"].run(stack([instance])).rows()
    assert failed == Failure(
        ErrorKind.MODEL_ERROR,
        "method 'add_common' output total is float64 [], not the declared float32 []",
    )


def test_a_declared_input_the_model_contradicts_fails_at_load(
    tmp_path: Path, servable_dir: Path
) -> None:
    add = {"add_dyn.mindir": servable_dir / "pipes" / "1" / "add_dyn.mindir"}
    config = TYPED_CONFIG.format(total="float64").replace('"x2": ("float32"', '"x2": ("int32"')
    root = make_servable(tmp_path, "m", config, add)
    message = (
        "method 'add_common' input 'x2' is declared int32 [2, -1] but stage 1 "
        "(model add_dyn.mindir) takes float32 [2, 2]"
    )
    with pytest.raises(ServableLoadError, match=re.escape(message)):
        load_servable(root, "m")
