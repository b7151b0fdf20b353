"""Instances as columns: build, check, slice and split `Columns` without touching values.

A request's instances travel as a list of `Columns` (`msq.proto.messages`): consecutive
instances that share names, dtypes and shapes are stacked once (`stack`), one tensor per name
with the instances as rows. Rows are then moved by range: `take_rows` cuts rows [start, stop)
out of a list of `Columns` as views of the same buffers (the broker never copies tensor
bytes), and `split` gives each row back as an instance of views. Outcomes travel the same way:
`Outcomes` is the successful rows' output columns plus the failed rows, and can be restricted
to a row range (a job's part of a request) or joined back (a request's jobs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from typing_extensions import Buffer

from msq.proto.codec import BYTES, DTYPES, STRING, CodecError, WireTensor, check_wire, itemsize
from msq.proto.errors import Failure
from msq.proto.messages import Columns, Instance, InstanceOutcome, RowFailure


def count_rows(parts: Iterable[Columns]) -> int:
    """How many instances `parts` hold."""
    return sum(part.count for part in parts)


def bytes_view(data: Buffer) -> memoryview:
    """A tensor's data as a flat view of bytes."""
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _row_bytes(tensor: WireTensor) -> int | None:
    """Bytes per row of a numeric tensor with this per-row shape (None: not stackable)."""
    if tensor.dtype in (STRING, BYTES) or tensor.dtype not in DTYPES:
        return None
    return math.prod(tensor.shape) * itemsize(tensor.dtype)


def check_columns(part: Columns) -> str | None:
    """Why `part` is malformed (None: it is well formed): every tensor must have `count` rows
    and a byte size that matches its shape; STRING and BYTES columns hold one row."""
    if part.count < 1:
        return f"columns must hold at least one instance, not {part.count}"
    for name, tensor in part.tensors.items():
        if not tensor.shape or tensor.shape[0] != part.count:
            return (
                f"input {name}: shape {list(tensor.shape)} does not have the "
                f"{part.count} rows of its columns"
            )
        try:
            check_wire(tensor)
        except CodecError as exc:
            return f"input {name}: {exc}"
    return None


# ------------------------------------------------------------------------------ building


def _stackable(instance: Instance) -> bool:
    """Whether the instance may be stacked with others of its layout: every value numeric and
    as many bytes as its shape says."""
    return all(_row_bytes(tensor) == tensor.nbytes for tensor in instance.values())


def _same_layout(instance: Instance, stacked: Instance) -> bool:
    """Whether `instance` stacks with `stacked`, a stackable instance: the same names, dtypes,
    shapes and byte sizes."""
    if instance.keys() != stacked.keys():
        return False
    for name, tensor in instance.items():
        other = stacked[name]
        if tensor.dtype != other.dtype or tensor.shape != other.shape:
            return False
        if tensor.nbytes != other.nbytes:
            return False
    return True


def _one_row(instance: Instance) -> Columns:
    """An instance as columns of one row: the same buffers, shapes with a leading 1."""
    return Columns(
        1,
        {
            name: WireTensor(tensor.dtype, (1, *tensor.shape), tensor.data)
            for name, tensor in instance.items()
        },
    )


def _stacked(group: Sequence[Instance]) -> Columns:
    """Instances of one layout as columns: one copy of each value into its column."""
    if len(group) == 1:
        return _one_row(group[0])
    tensors = {}
    for name, first in group[0].items():
        column = b"".join([instance[name].data for instance in group])  # sized, then filled
        tensors[name] = WireTensor(first.dtype, (len(group), *first.shape), column)
    return Columns(len(group), tensors)


def stack(instances: Sequence[Instance]) -> list[Columns]:
    """The instances as columns, in order: each run of consecutive instances that share
    names, dtypes and shapes becomes one `Columns` (values copied once); an instance with a
    STRING or BYTES value, or whose bytes do not match its shape, travels alone (as views)."""
    parts: list[Columns] = []
    group: list[Instance] = []
    for instance in instances:
        if group and _same_layout(instance, group[0]):
            group.append(instance)
            continue
        if group:
            parts.append(_stacked(group))
            group = []
        if not _stackable(instance):
            parts.append(_one_row(instance))
        else:
            group.append(instance)
    if group:
        parts.append(_stacked(group))
    return parts


# ------------------------------------------------------------------------------ slicing


def _slice_tensor(tensor: WireTensor, count: int, start: int, stop: int) -> WireTensor:
    row_bytes = tensor.nbytes // count
    data = bytes_view(tensor.data)[start * row_bytes : stop * row_bytes]
    return WireTensor(tensor.dtype, (stop - start, *tensor.shape[1:]), data)


def slice_columns(part: Columns, start: int, stop: int) -> Columns:
    """Rows [start, stop) of `part`, as views of its buffers."""
    if start == 0 and stop == part.count:
        return part
    tensors = {
        name: _slice_tensor(tensor, part.count, start, stop)
        for name, tensor in part.tensors.items()
    }
    return Columns(stop - start, tensors)


def take_rows(parts: Sequence[Columns], start: int, stop: int) -> list[Columns]:
    """Rows [start, stop) of the rows of `parts` (counted over all of them), as views."""
    taken: list[Columns] = []
    offset = 0
    for part in parts:
        end = offset + part.count
        first, last = max(start, offset), min(stop, end)
        if first < last:
            taken.append(slice_columns(part, first - offset, last - offset))
        if end >= stop:
            break
        offset = end
    return taken


def split(parts: Iterable[Columns]) -> list[Instance]:
    """Every row of `parts` as an instance of views, in order."""
    instances: list[Instance] = []
    for part in parts:
        rows = [dict[str, WireTensor]() for _ in range(part.count)]
        for name, tensor in part.tensors.items():
            dtype, shape = tensor.dtype, tensor.shape[1:]
            if part.count == 1:
                rows[0][name] = WireTensor(dtype, shape, tensor.data)
                continue
            view = bytes_view(tensor.data)
            size = len(view) // part.count
            for row, instance in enumerate(rows):
                instance[name] = WireTensor(dtype, shape, view[row * size : (row + 1) * size])
        instances.extend(rows)
    return instances


# ------------------------------------------------------------------------------ outcomes


class Outcomes(NamedTuple):
    """The outcomes of `count` instances: the rows in `failures` failed, `columns` hold the
    outputs of the others in row order (as in `Reply` and `Result`)."""

    columns: list[Columns]
    failures: list[RowFailure]
    count: int  # type: ignore[assignment]  # the row count shadows tuple.count

    @classmethod
    def of(cls, outcomes: Sequence[InstanceOutcome]) -> Outcomes:
        """Per-instance outcomes as `Outcomes` (successful runs stacked as in `stack`)."""
        failures = [
            RowFailure(row, outcome)
            for row, outcome in enumerate(outcomes)
            if isinstance(outcome, Failure)
        ]
        successes = [outcome for outcome in outcomes if not isinstance(outcome, Failure)]
        return cls(stack(successes), failures, len(outcomes))

    @classmethod
    def failed(cls, count: int, failure: Failure) -> Outcomes:
        """`count` instances that all failed with `failure`."""
        return cls([], [RowFailure(row, failure) for row in range(count)], count)

    @classmethod
    def join(cls, pieces: Iterable[Outcomes]) -> Outcomes:
        """The outcomes of consecutive row ranges, one after the other."""
        columns: list[Columns] = []
        failures: list[RowFailure] = []
        count = 0
        for piece in pieces:
            columns.extend(piece.columns)
            failures.extend(RowFailure(count + f.row, f.failure) for f in piece.failures)
            count += piece.count
        return cls(columns, failures, count)

    def problem(self) -> str | None:
        """Why these outcomes are inconsistent (None: they are not)."""
        rows = [failure.row for failure in self.failures]
        if any(not 0 <= row < self.count for row in rows) or rows != sorted(set(rows)):
            return f"failed rows {rows} are not distinct rows of {self.count} in order"
        outputs = count_rows(self.columns)
        if outputs != self.count - len(rows):
            return f"{outputs} output rows for {self.count - len(rows)} successful instances"
        return next(filter(None, map(check_columns, self.columns)), None)

    def restrict(self, start: int, stop: int) -> Outcomes:
        """The outcomes of rows [start, stop), numbered from 0 (output columns as views)."""
        if start == 0 and stop == self.count:
            return self
        failed_before = sum(1 for failure in self.failures if failure.row < start)
        failures = [
            RowFailure(failure.row - start, failure.failure)
            for failure in self.failures
            if start <= failure.row < stop
        ]
        first = start - failed_before
        columns = take_rows(self.columns, first, first + (stop - start) - len(failures))
        return Outcomes(columns, failures, stop - start)

    def rows(self) -> list[InstanceOutcome]:
        """Every instance's outcome in order: its outputs, or its failure."""
        if not self.failures:
            return list[InstanceOutcome](split(self.columns))
        outputs = iter(split(self.columns))
        failed = {failure.row: failure.failure for failure in self.failures}
        return [failed[row] if row in failed else next(outputs) for row in range(self.count)]
