"""Run a method's pipeline on a job's instances (rows of `Columns`), each instance failing alone.

Rows travel through the stages in groups (`_Group`): the rows of one `Columns` block stay
stacked, each value holding them as its first dim, for as long as only model stages run on
them; a model stage checks such a group once (its rows share one layout, so they fail or pass
together) and fills the padded batch with at most one copy per input (`LoadedModel`), its
outputs staying stacked as views of the model's outputs. A Python function runs once per
instance (`batch_size=None`) or on lists of instances, as it always did: the group comes
apart into its rows first. An exception fails only the instances it concerns: a batched call
that fails is retried one instance at a time to find the bad one. Answers leave as `Outcomes`:
stacked groups as their output columns, other rows stacked where consecutive ones allow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np

from msq import tracing
from msq.proto.codec import CodecError, WireTensor, from_wire, to_wire
from msq.proto.columns import Outcomes, check_columns, count_rows, split
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Instance, InstanceOutcome, TensorSpec
from msq.proto.validation import missing_input, shape_matches
from msq.workers.definition import MethodDef, Model, Placeholder, StageDef
from msq.workers.model import LoadedModel, Piece, Segment
from msq.workers.signature import describe
from msq.workers.values import InstanceError, Value, canonical, stage_view

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
Outputs = tuple[Value, ...]
State = dict[Placeholder, Value]


@dataclass(slots=True)
class _Group:
    """Rows [first, first + count) of a job, alive: `stacked`, each value of `state` holds
    the rows as its first dim; else one row (`count` 1) with its values as they are."""

    first: int
    count: int
    state: State
    stacked: bool

    def rows(self) -> list[_Group]:
        """The group as one-row groups of views."""
        if not self.stacked:
            return [self]
        return [
            _Group(self.first + row, 1, {p: _rows(v, row) for p, v in self.state.items()}, False)
            for row in range(self.count)
        ]

    def take(self, start: int, stop: int) -> _Group:
        """Rows [start, stop) of a stacked group, as views."""
        if start == 0 and stop == self.count:
            return self
        state = {p: _rows(value, slice(start, stop)) for p, value in self.state.items()}
        return _Group(self.first + start, stop - start, state, True)


def _rows(value: Value, rows: int | slice) -> Value:
    """Rows of a stacked value (a view; one row of a 1-D value is a 0-d array, not a scalar)."""
    return cast(np.ndarray, value)[rows, ...]


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


def _fits(tensor: WireTensor, row_shape: tuple[int, ...], declared: TensorSpec) -> bool:
    """Whether an output (of this shape per instance) has its declared type (-1 and None
    match anything)."""
    return declared.dtype in (None, tensor.dtype) and (
        declared.shape is None or shape_matches(row_shape, declared.shape)
    )


class MethodRunner:
    """Runs one method of a loaded servable on a job's rows."""

    def __init__(self, method: MethodDef, models: dict[int, LoadedModel]) -> None:
        self.method = method
        self.models = models  # by id() of the declared Model
        #: Called with (method, stage label, seconds) after each stage, when set.
        self.on_stage: Callable[[str, str, float], None] | None = None

    def run(self, columns: Sequence[Columns]) -> Outcomes:
        """The outcome of every row of `columns`, in order."""
        failures: dict[int, Failure] = {}
        groups = self._decode(columns, failures)
        before_model = True
        for number, stage in enumerate(self.method.stages, start=1):
            if not groups:
                break
            label = f"method '{self.method.name}' stage {number} ({stage.label})"
            traced_at = tracing.stage_started()
            started = time.perf_counter()
            groups = self._run_stage(number, stage, groups, failures, label)
            if self.on_stage is not None:
                self.on_stage(
                    self.method.name, f"{number}:{stage.label}", time.perf_counter() - started
                )
            is_model = isinstance(stage.target, Model)
            tracing.stage_done(traced_at, is_model, before_model, label)
            before_model = before_model and not is_model
        return self._encode(groups, failures, count_rows(columns))

    # ------------------------------------------------------------------------------ decoding

    def _decode(self, columns: Sequence[Columns], failures: dict[int, Failure]) -> list[_Group]:
        """The alive groups of the job's rows; the rows that cannot be decoded fail."""
        groups: list[_Group] = []
        first = 0
        for part in columns:
            decoded = self._decode_part(part)
            if isinstance(decoded, Failure):
                failures.update((first + row, decoded) for row in range(part.count))
            elif decoded is not None:
                groups.append(_Group(first, part.count, decoded, part.count > 1))
            first += part.count
        return groups

    def _decode_part(self, part: Columns) -> State | Failure | None:
        """A block's state (stacked when it holds several rows), or its rows' failure."""
        if part.count < 1:
            return None
        names = self.method.input_names
        inputs = Columns(part.count, {n: part.tensors[n] for n in names if n in part.tensors})
        if part.count == 1 and all(t.shape[:1] == (1,) for t in inputs.tensors.values()):
            return self._decode_instance(split([inputs])[0])  # the messages name its shapes
        problem = check_columns(inputs)
        if problem is not None:
            return Failure(ErrorKind.INVALID_INPUT, problem)
        state: State = {}
        for index, name in enumerate(names):
            tensor = inputs.tensors.get(name)
            if tensor is None:
                return Failure(ErrorKind.INVALID_INPUT, missing_input(name))
            state[Placeholder(0, index)] = canonical(from_wire(tensor), f"input {name}")
        return state

    def _decode_instance(self, instance: Instance) -> State | Failure:
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

    # ------------------------------------------------------------------------------ encoding

    def _encode(self, groups: list[_Group], failures: dict[int, Failure], count: int) -> Outcomes:
        """The outcomes of the job's `count` rows: failed ones, or the alive groups'
        outputs."""
        starting = {group.first: group for group in groups}
        pieces: list[Outcomes] = []
        run: list[InstanceOutcome] = []  # consecutive rows answered one by one
        row = 0
        while row < count:
            group = starting.get(row)
            if group is None or not group.stacked:
                run.append(failures[row] if group is None else self._encode_row(group.state))
                row += 1
                continue
            if run:
                pieces.append(Outcomes.of(run))
                run = []
            pieces.append(self._encode_stacked(group))
            row += group.count
        if run:
            pieces.append(Outcomes.of(run))
        return Outcomes.join(pieces)

    def _encode_row(self, state: State) -> InstanceOutcome:
        outcome: Instance = {}
        for name, placeholder in zip(self.method.output_names, self.method.returns, strict=True):
            try:
                outcome[name] = self._output(name, state[placeholder], stacked=False)
            except InstanceError as exc:
                return exc.failure
        return outcome

    def _encode_stacked(self, group: _Group) -> Outcomes:
        tensors: Instance = {}
        for name, placeholder in zip(self.method.output_names, self.method.returns, strict=True):
            try:
                tensors[name] = self._output(name, group.state[placeholder], stacked=True)
            except InstanceError as exc:
                return Outcomes.failed(group.count, exc.failure)
        return Outcomes([Columns(group.count, tensors)], [], group.count)

    def _output(self, name: str, value: Value, *, stacked: bool) -> WireTensor:
        """An output as it travels, checked against its declared type (per instance)."""
        try:
            tensor = to_wire(value)
        except CodecError as exc:
            message = f"method '{self.method.name}' output {name}: {exc}"
            raise InstanceError(ErrorKind.MODEL_ERROR, message) from None
        row_shape = tensor.shape[1:] if stacked else tensor.shape
        declared = self.method.output_types.get(name)
        if declared is not None and not _fits(tensor, row_shape, declared):
            given = describe(TensorSpec(name, tensor.dtype, row_shape))
            message = (
                f"method '{self.method.name}' output {name} is {given}, not the declared "
                f"{describe(declared)}"
            )
            raise InstanceError(ErrorKind.MODEL_ERROR, message)
        return tensor

    # ------------------------------------------------------------------------------ stages

    def _run_stage(
        self,
        number: int,
        stage: StageDef,
        groups: list[_Group],
        failures: dict[int, Failure],
        label: str,
    ) -> list[_Group]:
        """The groups still alive after `stage`, its outputs in their states."""
        target = stage.target
        if isinstance(target, Model):
            model = self.models[id(target)]
            return self._run_model(model, number, stage, groups, label, failures=failures)
        rows = [row for group in groups for row in group.rows()]
        inputs = [tuple(row.state[p] for p in stage.inputs) for row in rows]
        alive = []
        for row, outcome in zip(rows, _run_function(stage, inputs, label), strict=True):
            if isinstance(outcome, Failure):
                failures[row.first] = outcome
            else:
                row.state.update((Placeholder(number, k), value) for k, value in enumerate(outcome))
                alive.append(row)
        return alive

    @staticmethod
    def _run_model(
        model: LoadedModel,
        number: int,
        stage: StageDef,
        groups: list[_Group],
        label: str,
        *,
        failures: dict[int, Failure],
    ) -> list[_Group]:
        """A model stage: stacked groups run as they are, other rows as one-row pieces, all in
        the model's batches; if a batch fails, each row runs alone."""
        shared = any(spec.shared for spec in model.subgraph(0).inputs)
        units: list[tuple[_Group, Piece]] = []
        for group in groups:  # shared inputs take one value per run: stacked rows go alone
            for unit in group.rows() if shared else [group]:
                values = [unit.state[p] for p in stage.inputs]
                try:
                    if unit.stacked:
                        piece = model.prepare_rows(values, unit.count, 0)
                    else:
                        piece = model.prepare(values, 0)
                except InstanceError as exc:
                    failures.update((unit.first + row, exc.failure) for row in range(unit.count))
                    continue
                units.append((unit, piece))

        def execute(items: list[tuple[_Group, Piece]]) -> list[list[Segment]]:
            segments = model.run_pieces([piece for _, piece in items], 0)
            if segments and len(segments[0].outputs) != stage.outputs_count:
                raise InstanceError(
                    ErrorKind.MODEL_ERROR,
                    f"{label} gave {len(segments[0].outputs)} outputs, add_stage declared "
                    f"outputs_count={stage.outputs_count}",
                )
            per_item: list[list[Segment]] = [[] for _ in items]
            for segment in segments:
                per_item[segment.piece].append(segment)
            return per_item

        try:
            outcomes: list[list[Segment] | Failure] = list(execute(units))
        except Exception:  # servable code may raise anything: find the bad instances
            rows = [row for unit, _ in units for row in unit.rows()]
            units = [(row, model.prepare([row.state[p] for p in stage.inputs], 0)) for row in rows]
            outcomes = [outcome for unit in units for outcome in _isolated(execute, [unit], label)]
        alive = []
        for (unit, _), outcome in zip(units, outcomes, strict=True):
            if isinstance(outcome, Failure):
                failures.update((unit.first + row, outcome) for row in range(unit.count))
                continue
            for segment in outcome:
                outputs = enumerate(segment.outputs)
                if unit.stacked:
                    part = unit.take(segment.start, segment.stop)
                    part.state.update((Placeholder(number, k), output) for k, output in outputs)
                    alive.append(part)
                else:
                    unit.state.update(
                        (Placeholder(number, k), _rows(output, 0)) for k, output in outputs
                    )
                    alive.append(unit)
        return alive


def _run_function(
    stage: StageDef, inputs: list[tuple[Value, ...]], label: str
) -> list[Outputs | Failure]:
    """A Python stage on instances: once per instance, or on lists of them (`batch_size`)."""
    target = stage.target
    assert not isinstance(target, Model)
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


def _isolated(
    call: Callable[[list[ItemT]], list[ResultT]], items: list[ItemT], label: str
) -> list[ResultT | Failure]:
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
