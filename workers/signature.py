"""A loaded method's signature for the broker: the types of its inputs and outputs and its
batching.

Types come from two places. A model stage determines the type of a method input it takes
straight from the method (the model's dtype and per-instance shape) and of a method output it
gives straight back; the config declares the others (`register_method(input_types=...,
output_types=...)`). Where both say something they must agree; the signature then carries
the more precise of the two, dimension by dimension.
"""

from __future__ import annotations

from msq.proto.messages import MethodSignature, TensorSpec
from msq.workers.batching import BatchSettings
from msq.workers.definition import MethodDef, Model, ServableLoadError
from msq.workers.model import LoadedModel

Shape = tuple[int, ...]


def describe(spec: TensorSpec) -> str:
    """A type in words: `float32 [8, 8]`, `any dtype`, `any shape`."""
    dtype = "any dtype" if spec.dtype is None else spec.dtype
    shape = "any shape" if spec.shape is None else str(list(spec.shape))
    return f"{dtype} {shape}"


def _merged_shape(declared: Shape | None, found: Shape | None) -> Shape | None:
    """The more precise of two shapes, dimension by dimension; None when they disagree."""
    if declared is None or found is None:
        return found if declared is None else declared
    if len(declared) != len(found) or any(
        -1 not in (a, b) and a != b for a, b in zip(declared, found, strict=True)
    ):
        return None
    return tuple(b if a == -1 else a for a, b in zip(declared, found, strict=True))


def unify(where: str, declared: TensorSpec | None, found: TensorSpec, source: str) -> TensorSpec:
    """`found` (what `source` determines, e.g. "stage 2 (model m.mindir) takes") refined by
    the `declared` type; `ServableLoadError` naming `where` when they disagree."""
    if declared is None:
        return found
    shape = _merged_shape(declared.shape, found.shape)
    agree = declared.dtype is None or found.dtype in (None, declared.dtype)
    if not agree or (shape is None and declared.shape is not None and found.shape is not None):
        raise ServableLoadError(
            f"{where} is declared {describe(declared)} but {source} {describe(found)}"
        )
    return TensorSpec(found.name, declared.dtype or found.dtype, shape)


def method_signature(
    method: MethodDef, models: dict[int, LoadedModel], settings: BatchSettings
) -> MethodSignature:
    """The method's signature: model-determined and declared types (see the module
    docstring); job sizes follow the first batched model."""
    found: dict[int, tuple[TensorSpec, str]] = {}
    model_sizes: tuple[int, ...] | None = None
    for number, stage in enumerate(method.stages, start=1):
        if not isinstance(stage.target, Model):
            continue
        graph = models[id(stage.target)].subgraphs[0]
        if graph.batched and model_sizes is None:
            model_sizes = graph.sizes
        for placeholder, taken in zip(stage.inputs, graph.inputs, strict=True):
            if placeholder.stage == 0 and placeholder.index not in found:
                name = method.input_names[placeholder.index]
                source = f"stage {number} ({stage.label}) takes"
                found[placeholder.index] = (TensorSpec(name, taken.dtype, taken.shape), source)
    inputs = tuple(
        unify(
            f"method '{method.name}' input '{name}'",
            method.input_types.get(name),
            *found.get(index, (TensorSpec(name), "")),
        )
        for index, name in enumerate(method.input_names)
    )
    outputs = []
    for name, placeholder in zip(method.output_names, method.returns, strict=True):
        spec, source = TensorSpec(name), ""
        if placeholder.stage == 0:
            given = inputs[placeholder.index]
            spec, source = TensorSpec(name, given.dtype, given.shape), f"input '{given.name}' is"
        else:
            stage = method.stages[placeholder.stage - 1]
            target = stage.target
            known = models[id(target)].subgraphs[0].outputs if isinstance(target, Model) else None
            if known is not None:
                dtype, shape = known[placeholder.index]
                spec = TensorSpec(name, dtype, shape)
                source = f"stage {placeholder.stage} ({stage.label}) gives"
        where = f"method '{method.name}' output '{name}'"
        outputs.append(unify(where, method.output_types.get(name), spec, source))
    return MethodSignature(method.name, inputs, tuple(outputs), settings.policy(model_sizes))
