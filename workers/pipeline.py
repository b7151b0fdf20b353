"""Run a method's pipeline on a job's instances, each instance failing alone.

Stages run in order on every instance still alive: a Python function once per instance
(`batch_size=None`) or on lists of instances, a model on batches of its sizes. An exception
fails only the instances it concerns: a batched call that fails is retried one instance at a
time to find the bad one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from msq import tracing
from msq.proto.codec import CodecError, WireTensor, from_wire, to_wire
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Instance, InstanceOutcome, TensorSpec
from msq.proto.validation import missing_input, shape_matches
from msq.workers.definition import MethodDef, Model, Placeholder, StageDef
from msq.workers.model import LoadedModel
from msq.workers.signature import describe
from msq.workers.values import InstanceError, Value, canonical, stage_view

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
Outputs = tuple[Value, ...]
State = dict[Placeholder, Value]


def _outputs(result: object, count: int, label: str) -> Outputs:
    """A stage function's return for one instance, as `count` values."""
    if count == 1:
        if isinstance(result, (tuple, list)) and len(result) == 1:
            result = result[0]
        return (canonical(result, label),)
    if not isinstance(result, (tuple, list)) or len(result) != count:
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else "one value"
        raise InstanceError(ErrorKind.MODEL_ERROR, f"{label} returned {got}, expected {count}")
    return tuple(canonical(value, label) for value in result)


def _fits(tensor: WireTensor, declared: TensorSpec) -> bool:
    """Whether an output has its declared type (-1 and None match anything)."""
    return declared.dtype in (None, tensor.dtype) and (
        declared.shape is None or shape_matches(tensor.shape, declared.shape)
    )


class MethodRunner:
    """Runs one method of a loaded servable on lists of wire instances."""

    def __init__(self, method: MethodDef, models: dict[int, LoadedModel]) -> None:
        self.method = method
        self.models = models  # by id() of the declared Model
        #: Called with (method, stage label, seconds) after each stage, when set.
        self.on_stage: Callable[[str, str, float], None] | None = None

    def run(self, instances: Sequence[Instance]) -> list[InstanceOutcome]:
        """One outcome per instance, in order."""
        states: list[State | Failure] = [self._decode(instance) for instance in instances]
        before_model = True
        for number, stage in enumerate(self.method.stages, start=1):
            alive = [(i, state) for i, state in enumerate(states) if isinstance(state, dict)]
            if not alive:
                break
            inputs = [tuple(state[p] for p in stage.inputs) for _, state in alive]
            label = f"method '{self.method.name}' stage {number} ({stage.label})"
            traced_at = tracing.stage_started()
            started = time.perf_counter()
            outcomes = self._run_stage(stage, inputs, label)
            if self.on_stage is not None:
                self.on_stage(
                    self.method.name, f"{number}:{stage.label}", time.perf_counter() - started
                )
            is_model = isinstance(stage.target, Model)
            tracing.stage_done(traced_at, is_model, before_model, label)
            before_model = before_model and not is_model
            for (i, state), outcome in zip(alive, outcomes, strict=True):
                if isinstance(outcome, Failure):
                    states[i] = outcome
                else:
                    state.update((Placeholder(number, k), value) for k, value in enumerate(outcome))
        return [self._encode(state) for state in states]

    def _decode(self, instance: Instance) -> State | Failure:
        state: State = {}
        for index, name in enumerate(self.method.input_names):
            tensor = instance.get(name)
            if tensor is None:
                return Failure(ErrorKind.INVALID_INPUT, missing_input(name))
            try:
                state[Placeholder(0, index)] = canonical(from_wire(tensor), f"input {name}")
            except CodecError as exc:
                return Failure(ErrorKind.INVALID_INPUT, f"input {name}: {exc}")
        return state

    def _encode(self, state: State | Failure) -> InstanceOutcome:
        if isinstance(state, Failure):
            return state
        outcome: Instance = {}
        for name, placeholder in zip(self.method.output_names, self.method.returns, strict=True):
            try:
                tensor = outcome[name] = to_wire(state[placeholder])
            except CodecError as exc:
                message = f"method '{self.method.name}' output {name}: {exc}"
                return Failure(ErrorKind.MODEL_ERROR, message)
            declared = self.method.output_types.get(name)
            if declared is not None and not _fits(tensor, declared):
                given = describe(TensorSpec(name, tensor.dtype, tensor.shape))
                message = (
                    f"method '{self.method.name}' output {name} is {given}, not the declared "
                    f"{describe(declared)}"
                )
                return Failure(ErrorKind.MODEL_ERROR, message)
        return outcome

    # ------------------------------------------------------------------------------ stages

    def _run_stage(
        self, stage: StageDef, inputs: list[tuple[Value, ...]], label: str
    ) -> list[Outputs | Failure]:
        target = stage.target
        if isinstance(target, Model):
            return self._run_model(self.models[id(target)], stage, inputs, label)
        if stage.batch_size is None:

            def call_each(items: list[tuple[Value, ...]]) -> list[Outputs]:
                returned = target(*map(stage_view, items[0]))
                return [_outputs(returned, stage.outputs_count, label)]

            return [out for values in inputs for out in _isolated(call_each, [values], label)]

        def call_batch(items: list[tuple[Value, ...]]) -> list[Outputs]:
            returned = list(target([tuple(map(stage_view, values)) for values in items]))
            if len(returned) != len(items):
                raise InstanceError(
                    ErrorKind.MODEL_ERROR,
                    f"{label} returned {len(returned)} results for {len(items)} instances",
                )
            return [_outputs(result, stage.outputs_count, label) for result in returned]

        chunk = stage.batch_size or len(inputs)
        parts = [inputs[start : start + chunk] for start in range(0, len(inputs), chunk)]
        return [outcome for part in parts for outcome in _isolated(call_batch, part, label)]

    @staticmethod
    def _run_model(
        model: LoadedModel, stage: StageDef, inputs: list[tuple[Value, ...]], label: str
    ) -> list[Outputs | Failure]:
        results: list[Outputs | Failure] = []
        prepared: list[tuple[int, Any]] = []
        for position, values in enumerate(inputs):
            try:
                prepared.append((position, model.prepare(values, 0)))
                results.append(())
            except InstanceError as exc:
                results.append(exc.failure)

        def execute(items: list[Any]) -> list[Outputs]:
            outputs = model.execute(items, 0)
            if outputs and len(outputs[0]) != stage.outputs_count:
                raise InstanceError(
                    ErrorKind.MODEL_ERROR,
                    f"{label} gave {len(outputs[0])} outputs, add_stage declared "
                    f"outputs_count={stage.outputs_count}",
                )
            return list(outputs)

        outcomes = _isolated(execute, [values for _, values in prepared], label)
        for (position, _), outcome in zip(prepared, outcomes, strict=True):
            results[position] = outcome
        return results


def _isolated(
    call: Callable[[list[ItemT]], list[Outputs]], items: list[ItemT], label: str
) -> list[Outputs | Failure]:
    """`call(items)`; if it fails, call each item alone so only the bad ones fail."""
    if not items:
        return []
    try:
        return list(call(items))
    except Exception as exc:  # servable code may raise anything
        if len(items) > 1:
            return [outcome for item in items for outcome in _isolated(call, [item], label)]
        if isinstance(exc, InstanceError):
            failure = exc.failure
        else:
            failure = Failure(ErrorKind.MODEL_ERROR, f"{label} failed: {type(exc).__name__}: {exc}")
        logger.warning("%s", failure.message)
        return [failure]
