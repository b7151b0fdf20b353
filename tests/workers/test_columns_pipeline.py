"""A job's rows as `Columns`: stacked blocks and one-row blocks give the same outcomes; a block
is checked once and fails alone; padded batches take at most one copy per input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from msq.proto.codec import WireTensor
from msq.proto.columns import Outcomes, stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Instance, InstanceOutcome
from msq.workers.model import LoadedModel
from msq.workers.pipeline import MethodRunner
from msq.workers.servable import LoadedServable, load_servable
from tests.workers.support import decode, encode, f32
from tests.workers.test_servable_loading import make_servable

#: What an instance of the property test is: a good one, or one bad in a given way.
KINDS = ("good", "good", "good", "dtype", "shape", "missing", "string", "negative")
#: The dtypes of wrongly typed inputs (the models take float32).
WRONG_DTYPES = ("int32", "int64", "float64", "float16", "uint8", "bool")


@st.composite
def runs(draw: st.DrawFn) -> tuple[str, int, str, tuple[int, ...]]:
    """A run of instances of one kind (so they stack into one block): the kind, how many, and
    the dtype or shape of the wrong input for the "dtype" and "shape" kinds."""
    kind = draw(st.sampled_from(KINDS))
    count = draw(st.integers(1, 9))
    dtype = draw(st.sampled_from(WRONG_DTYPES))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    return kind, count, dtype, shape


def instance_of(
    kind: str,
    value: float,
    inputs: tuple[str, ...],
    shape: tuple[int, ...],
    wrong: tuple[str, tuple[int, ...]],
) -> Instance:
    """An instance of `kind` for a method taking float32 `shape` inputs, its values from
    `value` (distinct per row, so that mixed-up rows show); a "dtype" or "shape" instance has
    its last input of the `wrong` dtype or shape."""
    good = {name: f32(*shape, value=value + k) for k, name in enumerate(inputs)}
    last = inputs[-1]
    wrong_dtype, wrong_shape = wrong
    if wrong_shape == shape:
        wrong_shape = (*shape, 1)
    values: dict[str, object] = dict(good)
    if kind == "dtype":
        values[last] = np.full(shape, value, wrong_dtype)
    elif kind == "shape":
        values[last] = f32(*wrong_shape, value=value)
    elif kind == "string":
        values[last] = f"text {value}"
    elif kind == "negative":
        values[inputs[0]] = f32(*shape, value=-1 - value)
    elif kind == "missing":
        del values[last]
    return encode(values)


def one_row_each(instances: list[Instance]) -> list[Columns]:
    """The instances as one-row columns each (the per-instance path)."""
    return [part for instance in instances for part in stack([instance])]


def assert_same(stacked: list[InstanceOutcome], alone: list[InstanceOutcome]) -> None:
    assert len(stacked) == len(alone)
    for one, other in zip(map(decode, stacked), map(decode, alone), strict=True):
        if isinstance(one, Failure) or isinstance(other, Failure):
            assert one == other
            continue
        assert one.keys() == other.keys()
        for name, value in one.items():
            expected = np.asarray(other[name])
            assert np.asarray(value).dtype == expected.dtype
            np.testing.assert_array_equal(value, expected)


# method, its inputs, their shape per instance, y from the inputs (None: not checked)
METHODS: list[tuple[str, tuple[str, ...], tuple[int, ...], Callable[..., object] | None]] = [
    ("add_common", ("x1", "x2"), (2, 2), lambda x1, x2: x1 + x2),  # dynamic sizes 1-8
    ("affine", ("x",), (3,), lambda x: 2 * x + 1),  # fixed batch 4
    ("checked", ("x1", "x2"), (2, 2), lambda x1, x2: x1 + x2),  # a Python stage first
    ("pre_model_post", ("x1", "x2"), (2, 2), lambda x1, x2: 2 * (x1 + x2)),
    ("two_outputs", ("x1", "x2"), (2,), None),  # two model outputs and a Python stage after
    ("echo", ("x1", "x2"), (2, 2), lambda x1, x2: x1 + x2),  # an input returned as it is
    ("scaled", ("x", "s"), (3,), lambda x, s: x * s),  # s without a batch dim
    ("static", ("x1", "x2"), (2, 2), lambda x1, x2: x1 + x2),  # a model without a batch dim
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(METHODS),
    blocks=st.lists(runs(), max_size=8),
)
@example(method=METHODS[2], blocks=[("shape", 2, "int32", ())])  # 0-d rows of a block
def test_stacked_and_one_row_columns_give_the_same_outcomes(
    pipes: LoadedServable,
    method: tuple[str, tuple[str, ...], tuple[int, ...], Callable[..., object] | None],
    blocks: list[tuple[str, int, str, tuple[int, ...]]],
) -> None:
    """Random counts (0 to 72, spanning the models' sizes), kinds, wrong dtypes and shapes, in
    runs of same-layout instances (which stack into one block): the same outcome for every
    instance either way, and the right values."""
    name, inputs, shape, formula = method
    sequence = [(kind, (dtype, bad)) for kind, count, dtype, bad in blocks for _ in range(count)]
    instances = [
        instance_of(kind, i, inputs, shape, wrong) for i, (kind, wrong) in enumerate(sequence)
    ]
    kinds = [kind for kind, _ in sequence]
    runner = pipes.methods[name]
    stacked = runner.run(stack(instances))
    alone = runner.run(one_row_each(instances))
    assert stacked.problem() is None and alone.problem() is None
    assert_same(stacked.rows(), alone.rows())
    checks_sign = name in ("checked", "pre_model_post")
    for kind, outcome, instance in zip(kinds, stacked.rows(), instances, strict=True):
        fails = kind not in ("good", "negative") or (kind == "negative" and checks_sign)
        assert isinstance(outcome, Failure) == fails, (kind, outcome)
        if formula is not None and not fails:
            args = [decode(instance)[n] for n in inputs]  # type: ignore[index]
            np.testing.assert_array_equal(decode(outcome)["y"], formula(*args))  # type: ignore[index]


def add_instances(values: range) -> list[Instance]:
    return [encode({"x1": f32(2, 2, value=v), "x2": f32(2, 2, value=0.5)}) for v in values]


def sums(outcomes: Outcomes) -> list[object]:
    return [decode(o)["y"].tolist() if isinstance(o, dict) else o for o in outcomes.rows()]  # type: ignore[union-attr]


def test_a_bad_block_fails_all_its_rows_alone(pipes: LoadedServable) -> None:
    ints = [encode({"x1": f32(2, 2), "x2": np.ones((2, 2), np.int32)}) for _ in range(3)]
    parts = [*stack(add_instances(range(3))), *stack(ints), *stack(add_instances(range(3, 6)))]
    assert [part.count for part in parts] == [3, 3, 3]
    outcomes = pipes.methods["add_common"].run(parts)
    wrong = Failure(
        ErrorKind.INVALID_INPUT,
        "Given model input 1 data type int32 not match the data type float32 defined in model "
        "add_dyn.mindir",
    )
    good = [[[v + 0.5] * 2] * 2 for v in range(6)]
    assert sums(outcomes) == [*good[:3], wrong, wrong, wrong, *good[3:]]
    assert [part.count for part in outcomes.columns] == [3, 3]  # answered as the blocks came


def test_malformed_or_incomplete_blocks_fail_their_rows(pipes: LoadedServable) -> None:
    (good,) = stack(add_instances(range(2)))
    broken = Columns(2, {**good.tensors, "x1": WireTensor("float32", (2, 2, 2), b"\x00" * 3)})
    incomplete = Columns(2, {"x1": good.tensors["x1"]})
    outcomes = pipes.methods["add_common"].run([broken, incomplete, good])
    size = "input x1: data size 3 does not match shape [2, 2, 2] of float32 (32 bytes)"
    missing = "Cannot find input x2 in instance input"
    assert sums(outcomes) == [
        Failure(ErrorKind.INVALID_INPUT, size),
        Failure(ErrorKind.INVALID_INPUT, size),
        Failure(ErrorKind.INVALID_INPUT, missing),
        Failure(ErrorKind.INVALID_INPUT, missing),
        [[0.5, 0.5], [0.5, 0.5]],
        [[1.5, 1.5], [1.5, 1.5]],
    ]


@pytest.fixture
def model_calls(pipes: LoadedServable, monkeypatch: pytest.MonkeyPatch) -> list[list[np.ndarray]]:
    """The arrays of each run of `add_common`'s model (the real model still runs them)."""
    runner = pipes.methods["add_common"]
    model: LoadedModel = runner.models[id(runner.method.stages[0].target)]
    calls: list[list[np.ndarray]] = []
    call = model._call

    def recording(graph: object, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        calls.append(list(arrays))
        return call(graph, arrays)  # type: ignore[arg-type]

    monkeypatch.setattr(model, "_call", recording)
    return calls


def test_a_block_of_a_batch_size_runs_without_a_copy(
    pipes: LoadedServable, model_calls: list[list[np.ndarray]]
) -> None:
    parts = stack(add_instances(range(8)))
    outcomes = pipes.methods["add_common"].run(parts)
    (arrays,) = model_calls
    for array, name in zip(arrays, ("x1", "x2"), strict=True):
        column = np.frombuffer(memoryview(parts[0].tensors[name].data), np.float32)
        assert array.shape == (8, 2, 2) and np.shares_memory(array, column)
    assert sums(outcomes) == [[[v + 0.5] * 2] * 2 for v in range(8)]


def test_blocks_fill_one_padded_batch_with_one_copy_and_padding_never_leaks(
    pipes: LoadedServable, model_calls: list[list[np.ndarray]]
) -> None:
    parts = [*stack(add_instances(range(3))), *stack(add_instances(range(3, 5)))]
    outcomes = pipes.methods["add_common"].run(parts)
    (arrays,) = model_calls  # one run for the job: 5 rows padded to 8
    x1, _ = arrays
    assert x1.shape == (8, 2, 2)
    assert x1[:5].tolist() == [[[float(v)] * 2] * 2 for v in range(5)]
    assert not x1[5:].any()
    assert [part.count for part in outcomes.columns] == [3, 2]
    assert [part.tensors["y"].shape for part in outcomes.columns] == [(3, 2, 2), (2, 2, 2)]
    assert sums(outcomes) == [[[v + 0.5] * 2] * 2 for v in range(5)]


def test_a_block_larger_than_the_largest_size_runs_in_batches(
    pipes: LoadedServable, model_calls: list[list[np.ndarray]]
) -> None:
    outcomes = pipes.methods["add_common"].run(stack(add_instances(range(11))))
    assert [arrays[0].shape[0] for arrays in model_calls] == [8, 4]
    assert [part.count for part in outcomes.columns] == [8, 3]
    assert sums(outcomes) == [[[v + 0.5] * 2] * 2 for v in range(11)]


def test_a_failing_model_run_is_retried_row_by_row(
    pipes: LoadedServable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that fails on NaN: only the row holding it fails, its block's others run."""
    runner = pipes.methods["add_common"]
    model = runner.models[id(runner.method.stages[0].target)]
    call = model._call

    def failing_on_nan(graph: object, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        if any(np.isnan(array).any() for array in arrays):
            raise RuntimeError("NaN in the batch")
        return call(graph, arrays)  # type: ignore[arg-type]

    monkeypatch.setattr(model, "_call", failing_on_nan)
    instances = add_instances(range(5))
    instances[2] = encode({"x1": f32(2, 2, value=np.nan), "x2": f32(2, 2)})
    outcomes = runner.run(stack(instances))
    failure = Failure(
        ErrorKind.MODEL_ERROR,
        "method 'add_common' stage 1 (model add_dyn.mindir) failed: RuntimeError: NaN in the batch",
    )
    good = [[[v + 0.5] * 2] * 2 for v in range(5)]
    assert sums(outcomes) == [*good[:2], failure, *good[3:]]


PASSTHROUGH_CONFIG = """
from msq.workers import register

add = register.declare_model("add_dyn.mindir", "MindIR")


@register.register_method(output_names=["y", "t"], output_types={"t": ("float32", [2])})
def passthrough(x, t):
    return register.add_stage(add, x, x), t
"""


def test_declared_output_types_are_checked_per_block(tmp_path: Path, servable_dir: Path) -> None:
    add = {"add_dyn.mindir": servable_dir / "pipes" / "1" / "add_dyn.mindir"}
    loaded = load_servable(make_servable(tmp_path, "m", PASSTHROUGH_CONFIG, add), "m")
    runner: MethodRunner = loaded.methods["passthrough"]
    x = f32(2, 2, value=1)
    instances = [
        *(encode({"x": x, "t": f32(2, value=v)}) for v in range(2)),
        *(encode({"x": x, "t": np.zeros(2, np.int32)}) for _ in range(2)),
        *(encode({"x": x, "t": f32(3)}) for _ in range(2)),
    ]
    outcomes = runner.run(stack(instances))
    assert [part.count for part in outcomes.columns] == [2]
    rows = [decode(o) for o in outcomes.rows()]
    assert [row["t"].tolist() for row in rows[:2]] == [[0.0, 0.0], [1.0, 1.0]]  # type: ignore[index]
    int32 = "method 'passthrough' output t is int32 [2], not the declared float32 [2]"
    wide = "method 'passthrough' output t is float32 [3], not the declared float32 [2]"
    assert rows[2:] == [
        Failure(ErrorKind.MODEL_ERROR, int32),
        Failure(ErrorKind.MODEL_ERROR, int32),
        Failure(ErrorKind.MODEL_ERROR, wide),
        Failure(ErrorKind.MODEL_ERROR, wide),
    ]
