"""Batch geometry from a graph's input shapes (`msq.workers.geometry`): pure, no MindSpore."""

from __future__ import annotations

import pytest

from msq.workers.definition import ServableLoadError
from msq.workers.geometry import Geometry, InputSpec, batch_geometry

SIZES = (1, 2, 4, 8)


def geometry(
    dims: list[tuple[str, tuple[int, ...]]], *, batched: bool = True, shared: tuple[int, ...] = ()
) -> Geometry:
    return batch_geometry(
        "m.mindir", dims, with_batch_dim=batched, shared=shared, dynamic_sizes=SIZES
    )


def test_a_dynamic_batch_dim_runs_the_allowed_sizes() -> None:
    assert geometry([("float32", (-1, 2, 2)), ("int32", (-1,))]) == Geometry(
        (InputSpec("float32", (2, 2)), InputSpec("int32", ())), SIZES, True
    )


def test_a_fixed_batch_dim_runs_that_size() -> None:
    assert geometry([("float32", (4, 3))]) == Geometry((InputSpec("float32", (3,)),), (4,), True)


def test_shared_inputs_keep_their_whole_shape() -> None:
    assert geometry([("float32", (-1, 3)), ("float32", (3,))], shared=(1,)) == Geometry(
        (InputSpec("float32", (3,)), InputSpec("float32", (3,), shared=True)), SIZES, True
    )


def test_without_a_batch_dim_one_instance_per_call() -> None:
    assert geometry([("float32", (2, 2)), ("float32", ())], batched=False) == Geometry(
        (InputSpec("float32", (2, 2)), InputSpec("float32", ())), (1,), False
    )


@pytest.mark.parametrize(
    ("dims", "shared", "message"),
    [
        (
            [("float32", (-1, 2))],
            (1,),
            "m.mindir: without_batch_dim_inputs [1] names inputs the model lacks (it has 1)",
        ),
        (
            [("float32", ())],
            (),
            "m.mindir: input 0 is a scalar without a batch dim; list it in "
            "without_batch_dim_inputs or declare the model with with_batch_dim=False",
        ),
        (
            [("float32", (-1, 2)), ("float32", (4, 2))],
            (),
            "m.mindir: inputs with a batch dim disagree on its size [-1, 4]; list inputs "
            "without a batch dim in without_batch_dim_inputs",
        ),
    ],
)
def test_declarations_the_shapes_contradict(
    dims: list[tuple[str, tuple[int, ...]]], shared: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ServableLoadError) as info:
        geometry(dims, shared=shared)
    assert str(info.value) == message
