"""`msq.proto.columns`: stacking, slicing and splitting rows, and outcomes by row range."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from msq.proto.codec import WireTensor, from_wire, to_wire
from msq.proto.columns import (
    Outcomes,
    check_columns,
    count_rows,
    slice_columns,
    split,
    stack,
    take_rows,
)
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Instance, RowFailure


def instance(value: object, **more: object) -> Instance:
    return {"x": to_wire(value), **{name: to_wire(v) for name, v in more.items()}}


def values(instances: list[Instance]) -> list[dict[str, object]]:
    return [
        {name: _plain(from_wire(tensor)) for name, tensor in item.items()} for item in instances
    ]


def _plain(value: object) -> object:
    return value.tolist() if isinstance(value, np.ndarray) else value


def test_consecutive_instances_of_one_layout_are_stacked_once() -> None:
    rows = [instance(np.full((2, 3), i, np.float32)) for i in range(4)]
    [part] = stack(rows)
    assert part.count == 4
    assert part.tensors["x"].shape == (4, 2, 3)
    assert values(split([part])) == values(rows)


def test_layout_changes_start_new_columns_and_strings_travel_alone() -> None:
    rows = [
        instance(np.zeros(2, np.float32)),
        instance(np.ones(2, np.float32)),
        instance(np.ones(3, np.float32)),
        instance("text"),
        instance(np.ones(3, np.float32)),
        instance(np.ones(3, np.int32)),
    ]
    parts = stack(rows)
    assert [part.count for part in parts] == [2, 1, 1, 1, 1]
    assert parts[2].tensors["x"].shape == (1,)
    assert values(split(parts)) == values(rows)


def test_a_single_instance_keeps_its_buffer() -> None:
    array = np.arange(20000, dtype=np.float32)  # large: travels as its own frame
    row = instance(array)
    [part] = stack([row])
    assert part.tensors["x"].data is row["x"].data


def test_an_instance_whose_bytes_do_not_match_its_shape_travels_alone() -> None:
    bad: Instance = {"x": WireTensor("float32", (3,), b"\0" * 8)}
    parts = stack([instance(np.ones(3, np.float32)), bad, instance(np.ones(3, np.float32))])
    assert [part.count for part in parts] == [1, 1, 1]
    assert check_columns(parts[1]) == (
        "input x: data size 8 does not match shape [1, 3] of float32 (12 bytes)"
    )


def test_rows_are_taken_across_columns_as_views() -> None:
    parts = stack([instance(np.full(2, i, np.int64)) for i in range(3)])
    parts += stack([instance(np.full(5, i, np.int64)) for i in range(3, 6)])
    taken = take_rows(parts, 2, 5)
    assert [part.count for part in taken] == [1, 2]
    assert [from_wire(row["x"]).tolist()[0] for row in split(taken)] == [2, 3, 4]
    column = parts[0].tensors["x"].data
    assert isinstance(taken[0].tensors["x"].data, memoryview)
    assert taken[0].tensors["x"].data.obj is column  # type: ignore[attr-defined]
    assert slice_columns(parts[1], 0, 3) is parts[1]
    assert take_rows(parts, 3, 3) == []  # an empty range takes no (empty) columns


def test_malformed_columns_are_named() -> None:
    part = Columns(2, {"x": WireTensor("float32", (3,), b"\0" * 12)})
    assert check_columns(part) == "input x: shape [3] does not have the 2 rows of its columns"
    assert check_columns(Columns(0, {})) == "columns must hold at least one instance, not 0"


FAILED = Failure(ErrorKind.INVALID_INPUT, "bad")


def test_outcomes_restrict_and_join_round_trip() -> None:
    rows = [instance(np.float32(i)) if i % 3 else FAILED for i in range(10)]
    outcomes = Outcomes.of(rows)
    assert outcomes.problem() is None
    assert [f.row for f in outcomes.failures] == [0, 3, 6, 9]
    pieces = [outcomes.restrict(0, 4), outcomes.restrict(4, 7), outcomes.restrict(7, 10)]
    assert pieces[1].failures == [RowFailure(2, FAILED)]
    assert outcomes.restrict(3, 4) == Outcomes([], [RowFailure(0, FAILED)], 1)  # no empty columns
    joined = Outcomes.join(pieces)
    assert _describe(joined.rows()) == _describe(rows)
    assert outcomes.restrict(0, 10) is outcomes  # the whole range: nothing to cut


def test_inconsistent_outcomes_are_found() -> None:
    outputs = stack([instance(np.float32(1))])
    assert Outcomes(outputs, [], 2).problem() == "1 output rows for 2 successful instances"
    assert Outcomes(outputs, [RowFailure(3, FAILED)], 2).problem() == (
        "failed rows [3] are not distinct rows of 2 in order"
    )
    assert Outcomes.failed(2, FAILED).problem() is None


def _describe(outcomes: list[Instance | Failure]) -> list[object]:
    return [o if isinstance(o, Failure) else values([o])[0] for o in outcomes]


@given(
    shapes=st.lists(st.sampled_from([(), (2,), (3,)]), min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=5),
)
def test_any_cut_of_stacked_rows_gives_the_rows_back(
    shapes: list[tuple[int, ...]], cuts: list[int]
) -> None:
    rows = [instance(np.full(shape, i, np.int32)) for i, shape in enumerate(shapes)]
    parts = stack(rows)
    assert count_rows(parts) == len(rows)
    bounds = sorted({0, len(rows), *(min(cut, len(rows)) for cut in cuts)})
    pieces = [take_rows(parts, a, b) for a, b in itertools.pairwise(bounds)]
    assert values([row for piece in pieces for row in split(piece)]) == values(rows)
