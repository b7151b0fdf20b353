"""The static definition of a servable, as `servable_config.py` builds it through `register`.

Importing a servable's config declares its models and records each method's pipeline: a list
of stages (a model or a Python function) whose arguments are `Placeholder`s. Nothing here
imports MindSpore; a worker binds each declared `Model` to a loaded `ModelRunner` later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from msq.proto.messages import TensorSpec
from msq.workers.batching import BatchingConfig
from msq.workers.values import Value, canonical


class ServableConfigError(RuntimeError):
    """A servable's `servable_config.py` declares something invalid."""


class ServableLoadError(RuntimeError):
    """A servable cannot be loaded: missing folders or files, or models that do not fit."""


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A value in a method's data flow: output `index` of stage `stage` (0: the method inputs)."""

    stage: int
    index: int


class ModelRunner(Protocol):
    """A loaded model that runs instances (tuples of input values) on a device."""

    def run(self, instances: Sequence[Sequence[Value]], subgraph: int) -> list[tuple[Value, ...]]:
        """Run the instances and return each one's outputs, in order."""
        ...


class Model:
    """A model declared with `register.declare_model`: a stage of methods, or called from a
    Python stage with `call`. Do not construct it directly."""

    def __init__(
        self,
        files: tuple[str, ...],
        model_format: str,
        *,
        with_batch_dim: bool,
        without_batch_dim_inputs: tuple[int, ...],
        context: object = None,
        config_file: str | None = None,
    ) -> None:
        self.files = files
        self.model_format = model_format
        self.with_batch_dim = with_batch_dim
        self.without_batch_dim_inputs = without_batch_dim_inputs
        self.context = context
        self.config_file = config_file
        self.runner: ModelRunner | None = None

    @property
    def model_key(self) -> str:
        """The model's name: its file names joined by ';'."""
        return ";".join(self.files)

    def __repr__(self) -> str:
        return f"Model({self.model_key})"

    def call(self, *args: Any, subgraph: int = 0) -> Any:
        """Run the model from a Python stage.

        `call(x1, x2)` runs one instance and returns its output (a tuple when the model has
        several); `call([(x1, x2), (x1, x2), ...])` runs a list of instances and returns a
        tuple with each instance's outputs (a tuple per instance).
        """
        where = f"{self!r}.call()" if subgraph == 0 else f"{self!r}.call(subgraph={subgraph})"
        if not isinstance(subgraph, int) or isinstance(subgraph, bool) or subgraph < 0:
            raise RuntimeError(f"{where} failed: subgraph must be an int >= 0, not {subgraph!r}")
        if not args:
            raise RuntimeError(
                f"{where} failed: no inputs; use call(x1, x2) for one instance or "
                "call([(x1, x2), (x1, x2)]) for several"
            )
        if self.runner is None:
            raise RuntimeError(f"{where} failed: the model is only loaded inside an msq worker")
        several = len(args) == 1 and isinstance(args[0], (list, tuple))
        if several and not all(isinstance(item, (list, tuple)) for item in args[0]):
            raise RuntimeError(
                f"{where} failed: a list of instances must hold one tuple of inputs per instance"
            )
        instances = [tuple(item) for item in args[0]] if several else [args]
        converted = [tuple(canonical(value, where) for value in item) for item in instances]
        outputs = self.runner.run(converted, subgraph)
        if several:
            return tuple(outputs)
        return outputs[0][0] if len(outputs[0]) == 1 else outputs[0]


@dataclass(frozen=True, slots=True)
class StageDef:
    """One stage of a method: a model or a Python function, its inputs and output count.

    `batch_size` applies to functions: None calls the function once per instance; 0 or N
    calls it with a list of instances (all of a job's, or at most N).
    """

    target: Model | Callable[..., Any]
    inputs: tuple[Placeholder, ...]
    outputs_count: int
    batch_size: int | None = None
    tag: str = ""

    @property
    def label(self) -> str:
        """How messages name this stage."""
        if isinstance(self.target, Model):
            return f"model {self.target.model_key}"
        return f"function {getattr(self.target, '__name__', repr(self.target))}"


@dataclass(slots=True)
class MethodDef:
    """A registered method: its input and output names, its pipeline of stages, and the types
    its config declared for some inputs and outputs (by name)."""

    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    stages: list[StageDef] = field(default_factory=list)
    returns: tuple[Placeholder, ...] = ()
    input_types: dict[str, TensorSpec] = field(default_factory=dict)
    output_types: dict[str, TensorSpec] = field(default_factory=dict)


@dataclass(slots=True)
class ServableDef:
    """Everything a servable's config declared: models, methods and batching settings."""

    name: str
    models: list[Model] = field(default_factory=list)
    methods: dict[str, MethodDef] = field(default_factory=dict)
    batching: BatchingConfig | None = None


_current = ServableDef("")


def current_servable() -> ServableDef:
    """The servable that `register` calls declare into now."""
    return _current


@contextmanager
def collecting(name: str) -> Iterator[ServableDef]:
    """Collect the declarations made while the block runs into a fresh `ServableDef`."""
    global _current  # noqa: PLW0603 - `register` is a module-level API, as in MindSpore Serving
    previous, _current = _current, ServableDef(name)
    try:
        yield _current
    finally:
        _current = previous
