"""Running method pipelines on a job's instances: exact values, batching, padding, failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msq.proto.codec import WireTensor
from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Job
from msq.workers.servable import LoadedServable, load_servable
from tests.workers.conftest import RunMethod
from tests.workers.support import decode, encode, f32, rows


def values(outcome: object, name: str) -> list:
    assert isinstance(outcome, dict), outcome
    return np.asarray(outcome[name]).tolist()


@pytest.mark.parametrize("count", range(1, 10))
def test_dynamic_batch_model_with_any_number_of_instances(run_pipes: RunMethod, count: int) -> None:
    """Up to 8 per call (sizes 1, 2, 4, 8), padded with zeros; each instance gets its own sum."""
    instances = [{"x1": f32(2, 2, value=i), "x2": f32(2, 2, value=100 * i)} for i in range(count)]
    outcomes = run_pipes("add_common", instances)
    assert [values(o, "y") for o in outcomes] == [[[101.0 * i] * 2] * 2 for i in range(count)]


@pytest.mark.parametrize("count", range(1, 10))
def test_fixed_batch_four_model_fed_one_to_nine(run_pipes: RunMethod, count: int) -> None:
    """Jobs split into runs of 4, the last padded; padded rows never come back."""
    instances = [{"x": np.arange(3, dtype=np.float32) + 10 * i} for i in range(count)]
    outcomes = run_pipes("affine", instances)
    expected = [[2.0 * (10 * i + k) + 1.0 for k in range(3)] for i in range(count)]
    assert [values(o, "y") for o in outcomes] == expected


def test_model_call_with_a_list_of_instances(run_pipes: RunMethod) -> None:
    outcomes = run_pipes("affine_via_call", [{"x": f32(3, value=v)} for v in range(6)])
    assert [values(o, "y") for o in outcomes] == [[2.0 * v + 1.0] * 3 for v in range(6)]


def test_list_of_subgraphs_and_model_call_in_python(run_pipes: RunMethod) -> None:
    outcomes = run_pipes("subgraphs", [{"x": np.array([1, 2], np.float32)}, {"x": f32(2)}])
    assert [(values(o, "first"), values(o, "chained")) for o in outcomes] == [
        ([2.0, 3.0], [20.0, 30.0]),
        ([1.0, 1.0], [10.0, 10.0]),
    ]


def test_shared_inputs_batch_only_with_equal_values(run_pipes: RunMethod) -> None:
    """`s` has no batch dim: instances with different `s` must not share one model run."""
    scales = [1.0, 2.0, 1.0, 3.0, 2.0]
    instances = [{"x": f32(3, value=i + 1), "s": f32(3, value=s)} for i, s in enumerate(scales)]
    outcomes = run_pipes("scaled", instances)
    assert [values(o, "y") for o in outcomes] == [[(i + 1) * s] * 3 for i, s in enumerate(scales)]


def test_model_without_batch_dim_runs_each_instance(run_pipes: RunMethod) -> None:
    instances = [{"x1": f32(2, 2, value=i), "x2": f32(2, 2, value=0.5)} for i in range(3)]
    outcomes = run_pipes("static", instances)
    assert [values(o, "y") for o in outcomes] == [[[i + 0.5] * 2] * 2 for i in range(3)]


def test_two_model_outputs_and_a_lambda_stage(run_pipes: RunMethod) -> None:
    x1, x2 = np.array([1, -4], np.float32), np.array([2, 1], np.float32)
    (outcome,) = run_pipes("two_outputs", [{"x1": x1, "x2": x2}])
    assert values(outcome, "total") == [3.0, -3.0]
    assert values(outcome, "diff") == [-1.0, -5.0]
    assert isinstance(outcome, dict)
    assert outcome["norm"].dtype == np.float64
    assert float(outcome["norm"]) == 6.0


def test_python_stage_values_and_return_conversions(run_pipes: RunMethod) -> None:
    """STRING as str, BYTES as a uint8 array; int -> int64, float -> float64, bool, bytes."""
    (outcome,) = run_pipes(
        "python_values", [{"text": "abc", "blob": b"xyz", "number": np.int32(3)}]
    )
    assert isinstance(outcome, dict)
    assert outcome["upper"] == "ABC"
    assert outcome["reversed"] == b"zyx"
    assert (outcome["length"].dtype, outcome["length"].shape, int(outcome["length"])) == (
        np.dtype(np.int64),
        (),
        3,
    )
    assert (outcome["double"].dtype, float(outcome["double"])) == (np.dtype(np.float64), 6.0)
    assert (outcome["positive"].dtype, bool(outcome["positive"])) == (np.dtype(np.bool_), True)
    assert (outcome["same"].dtype, float(outcome["same"])) == (np.dtype(np.float32), 3.0)


def test_batched_python_stages_get_lists_of_instances(run_pipes: RunMethod) -> None:
    instances = [{"x": np.int64(i)} for i in range(5)]
    everything = run_pipes("batch_all", instances)
    pairs = run_pipes("batch_pairs", instances)  # a generator, at most 2 instances per call
    assert [(values(o, "seen"), values(o, "x")) for o in everything] == [(5, i) for i in range(5)]
    assert [(values(o, "seen"), values(o, "x")) for o in pairs] == [
        (2, 0),
        (2, 1),
        (2, 2),
        (2, 3),
        (1, 4),
    ]


def test_method_inputs_can_be_outputs(run_pipes: RunMethod) -> None:
    (outcome,) = run_pipes("echo", [{"x1": f32(2, 2, value=2), "x2": f32(2, 2, value=3)}])
    assert values(outcome, "same") == [[2.0, 2.0], [2.0, 2.0]]
    assert values(outcome, "y") == [[5.0, 5.0], [5.0, 5.0]]


def test_a_failing_instance_fails_alone(run_pipes: RunMethod) -> None:
    instances = [{"x1": f32(2, 2, value=v), "x2": f32(2, 2, value=1)} for v in (1, -1, 2)]
    first, bad, last = run_pipes("checked", instances)
    assert values(first, "y") == [[2.0, 2.0], [2.0, 2.0]]
    assert bad == Failure(
        ErrorKind.MODEL_ERROR,
        "method 'checked' stage 1 (function reject_negative) failed: ValueError: negative input",
    )
    assert values(last, "y") == [[3.0, 3.0], [3.0, 3.0]]


def test_a_failing_batch_is_retried_instance_by_instance(run_pipes: RunMethod) -> None:
    outcomes = run_pipes("checked_batch", [{"x": f32(2, value=v)} for v in (1, 2, -3, 4)])
    assert [values(o, "y") for o in outcomes if isinstance(o, dict)] == [
        [1.0, 1.0],
        [2.0, 2.0],
        [4.0, 4.0],
    ]
    assert outcomes[2] == Failure(
        ErrorKind.MODEL_ERROR,
        "method 'checked_batch' stage 1 (function reject_negative_batch) failed: "
        "ValueError: negative input in the batch",
    )


def test_unsupported_python_return_fails_that_instance(run_pipes: RunMethod) -> None:
    good, bad = run_pipes("unsupported_output", [{"x": np.int64(0)}, {"x": np.int64(1)}])
    assert values(good, "y") == 0
    assert bad == Failure(
        ErrorKind.MODEL_ERROR,
        "method 'unsupported_output' stage 1 (function odd_value) gave a value of unsupported "
        "type dict",
    )


def test_input_validation_in_the_worker(run_pipes: RunMethod) -> None:
    good = {"x1": f32(2, 2, value=1), "x2": f32(2, 2, value=2)}
    instances = [
        {"x1": f32(2, 2)},
        {**good, "x2": np.ones((2, 2), np.int32)},
        {**good, "x2": f32(3, 2)},
        {**good, "x2": f32(4, value=2)},  # the right size is not enough: never reshaped
        {**good, "x2": "text"},
        {**good, "extra": f32(1)},  # extra items are ignored
    ]
    outcomes = run_pipes("add_common", instances)
    assert outcomes[:5] == [
        Failure(ErrorKind.INVALID_INPUT, "Cannot find input x2 in instance input"),
        Failure(
            ErrorKind.INVALID_INPUT,
            "Given model input 1 data type int32 not match the data type float32 defined in "
            "model add_dyn.mindir",
        ),
        Failure(
            ErrorKind.INVALID_INPUT,
            "Given model input 1 size 24 not match the size 16 defined in model add_dyn.mindir",
        ),
        Failure(
            ErrorKind.INVALID_INPUT,
            "Given model input 1 shape [4] not match the shape [2, 2] defined in model "
            "add_dyn.mindir",
        ),
        Failure(
            ErrorKind.INVALID_INPUT,
            "Given model input 1 is string, not the data type float32 defined in model "
            "add_dyn.mindir",
        ),
    ]
    assert values(outcomes[5], "y") == [[3.0, 3.0], [3.0, 3.0]]


def test_a_python_stage_giving_the_model_a_wrong_shape_fails_that_instance(
    run_pipes: RunMethod,
) -> None:
    """`flattened` turns x1 [2, 2] into [4]: the right byte size, the wrong shape."""
    x = f32(2, 2, value=1)
    assert run_pipes("flattened", [{"x1": x, "x2": x}]) == [
        Failure(
            ErrorKind.INVALID_INPUT,
            "Given model input 0 shape [4] not match the shape [2, 2] defined in model "
            "add_dyn.mindir",
        )
    ]


def test_malformed_wire_tensor_fails_that_instance(pipes: LoadedServable) -> None:
    good = encode({"x1": f32(2, 2), "x2": f32(2, 2)})
    broken = {**good, "x1": WireTensor("float32", (2, 2), b"\x00" * 3)}
    outcomes = pipes.methods["add_common"].run(stack([broken, good])).rows()
    assert outcomes[0] == Failure(
        ErrorKind.INVALID_INPUT,
        "input x1: data size 3 does not match shape [2, 2] of float32 (16 bytes)",
    )
    assert values(decode(outcomes[1]), "y") == [[0.0, 0.0], [0.0, 0.0]]


def test_execute_a_job(pipes: LoadedServable) -> None:
    job = Job(
        7,
        "affine",
        stack([encode({"x": f32(3, value=1)}), encode({"x": f32(3, value=2)})]),
        60_000.0,
    )
    result = pipes.execute(job)
    assert result.job_id == 7
    assert [values(decode(o), "y") for o in rows(result)] == [[3.0] * 3, [5.0] * 3]
    assert result.compute_ms > 0 and result.compute_cpu_ms > 0
    missing = pipes.execute(Job(8, "nope", stack([encode({"x": f32(3)})] * 2), 60_000.0))
    assert rows(missing) == [Failure(ErrorKind.NOT_FOUND, "method is not available: nope")] * 2


def test_legacy_servable_methods(servable_dir: Path) -> None:
    legacy = load_servable(servable_dir, "legacy", max_batch_size=2)

    def run(method: str, instances: list[dict[str, object]]) -> list:
        runner = legacy.methods[method]
        return [
            values(decode(o), "y") for o in runner.run(stack([encode(i) for i in instances])).rows()
        ]

    ints = {"x1": np.full((2, 2), 3, np.int64), "x2": np.full((2, 2), 4, np.int32)}
    assert run("add_cast", [ints]) == [[[7.0, 7.0], [7.0, 7.0]]]
    floats = [{"x1": f32(2, 2, value=v), "x2": f32(2, 2, value=1)} for v in (1, 3, 5)]
    assert run("add_common", floats) == [[[v + 1.0] * 2] * 2 for v in (1, 3, 5)]
    assert run("add_halved", floats) == [[[(v + 1.0) / 2] * 2] * 2 for v in (1, 3, 5)]


@pytest.mark.parametrize(
    ("method", "count", "batches"),
    [
        ("add_common", 3, [4]),  # dynamic batch, sizes 1, 2, 4, 8
        ("add_common", 9, [8, 1]),
        ("affine", 5, [4, 4]),  # fixed batch 4
    ],
)
def test_the_worker_pads_each_model_call_to_that_models_sizes(
    pipes: LoadedServable,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    count: int,
    batches: list[int],
) -> None:
    """Jobs carry no batch size: each model batch is padded to the smallest of its sizes."""
    runner = pipes.methods[method]
    graph = runner.models[id(runner.method.stages[0].target)].subgraphs[0]
    seen: list[int] = []
    cell = graph.cell

    def recording(*arrays: object) -> object:
        seen.append(arrays[0].shape[0])  # type: ignore[attr-defined]
        return cell(*arrays)

    monkeypatch.setattr(graph, "cell", recording)
    inputs = {
        "add_common": lambda i: {"x1": f32(2, 2, value=i), "x2": f32(2, 2)},
        "affine": lambda i: {"x": f32(3, value=i)},
    }[method]
    outcomes = runner.run(stack([encode(inputs(i)) for i in range(count)])).rows()
    assert seen == batches
    assert len(outcomes) == count and all(isinstance(o, dict) for o in outcomes)
