"""A model graph's batch geometry from its input shapes: pure logic, no MindSpore, no files.

A graph declared with a batch dim has it first on every input not listed as shared
(`without_batch_dim_inputs`); its size is -1 (dynamic: the graph runs the allowed sizes) or a
fixed N (the graph runs N). A graph without a batch dim runs one instance per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from msq.workers.definition import ServableLoadError

Shape = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class InputSpec:
    """A model input per instance: dtype and shape (-1: any size); `shared` inputs have no
    batch dim and one value serves the whole batch."""

    dtype: str
    shape: Shape
    shared: bool = False


@dataclass(frozen=True, slots=True)
class Geometry:
    """How a graph is called: its inputs per instance, the batch sizes it runs (ascending),
    and whether it takes a batch dim at all."""

    inputs: tuple[InputSpec, ...]
    sizes: tuple[int, ...]
    batched: bool


def batch_geometry(
    name: str,
    dims: Sequence[tuple[str, Shape]],
    *,
    with_batch_dim: bool,
    shared: Sequence[int],
    dynamic_sizes: tuple[int, ...],
) -> Geometry:
    """The geometry of graph `name` whose inputs have these (dtype, shape) as declared in
    the graph; `ServableLoadError` when the shapes and the model's declaration disagree."""
    if any(index >= len(dims) for index in shared):
        raise ServableLoadError(
            f"{name}: without_batch_dim_inputs {list(shared)} names inputs the model "
            f"lacks (it has {len(dims)})"
        )
    if not with_batch_dim:
        return Geometry(tuple(InputSpec(dtype, shape) for dtype, shape in dims), (1,), False)
    batch_dims = set()
    for k, (_, shape) in enumerate(dims):
        if k in shared:
            continue
        if not shape:
            raise ServableLoadError(
                f"{name}: input {k} is a scalar without a batch dim; list it in "
                "without_batch_dim_inputs or declare the model with with_batch_dim=False"
            )
        batch_dims.add(shape[0])
    if len(batch_dims) != 1:
        raise ServableLoadError(
            f"{name}: inputs with a batch dim disagree on its size {sorted(batch_dims)}; "
            "list inputs without a batch dim in without_batch_dim_inputs"
        )
    batch = batch_dims.pop()
    inputs = tuple(
        InputSpec(dtype, shape, shared=True) if k in shared else InputSpec(dtype, shape[1:])
        for k, (dtype, shape) in enumerate(dims)
    )
    return Geometry(inputs, dynamic_sizes if batch < 0 else (batch,), True)
