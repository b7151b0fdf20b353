"""The broker core moves row ranges of columns: jobs are views of the requests' buffers, a range
may be split over jobs and a job may join ranges of several requests, and every reply is what
per-instance processing gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from msq.broker.core import BrokerCore, Outgoing
from msq.broker.settings import BrokerSettings
from msq.proto.batching import BatchPolicy
from msq.proto.codec import WireTensor, from_wire, to_wire
from msq.proto.columns import count_rows, stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    Columns,
    Instance,
    InstanceOutcome,
    Job,
    MethodSignature,
    Ready,
    Reply,
    Request,
    Result,
    RowFailure,
    TensorSpec,
)
from msq.proto.validation import check_instance
from tests.broker.factories import (
    GATEWAY,
    W1,
    W2,
    echo_result,
    first_values,
    instance,
    job_values,
    jobs,
    new_core,
    ready,
    replies,
    reply_outcomes,
    request,
)

#: x of any length (so that rows of several layouts are valid), and y.
INPUTS = (TensorSpec("x", "float32", (-1,)),)
#: Instance layouts: valid ones (lengths 2 and 3, an extra tensor that is dropped) and bad ones.
LAYOUTS = ("x2", "x3", "extra", "missing", "int32", "str")


def _instance(layout: str, value: float) -> Instance:
    row = np.array([value, -value, value / 2][: 3 if layout == "x3" else 2], np.float32)
    match layout:
        case "extra":
            return {"x": to_wire(row), "extra": to_wire(np.int8(7))}
        case "missing":
            return {"z": to_wire(row)}
        case "int32":
            return {"x": to_wire(row.astype(np.int32))}
        case "str":
            return {"x": to_wire(f"{value}")}
    return {"x": to_wire(row)}


def _expected(inst: Instance, failing: frozenset[float]) -> InstanceOutcome:
    """The outcome per-instance processing gives: the input rule, then the worker's y = 10 x."""
    checked = check_instance(inst, INPUTS)
    if isinstance(checked, Failure):
        return checked
    x = np.asarray(from_wire(checked["x"]))
    if float(x[0]) in failing:
        return Failure(ErrorKind.MODEL_ERROR, f"bad value {x[0]}")
    return {"y": to_wire(x * 10)}


def _same(got: InstanceOutcome, want: InstanceOutcome) -> bool:
    if isinstance(want, Failure) or isinstance(got, Failure):
        return got == want
    return got.keys() == want.keys() == {"y"} and np.array_equal(
        np.asarray(from_wire(got["y"])), np.asarray(from_wire(want["y"]))
    )


requests_strategy = st.lists(
    st.lists(st.sampled_from(LAYOUTS), min_size=1, max_size=24), min_size=1, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(
    layouts=requests_strategy,
    max_size=st.integers(1, 8),
    capacity=st.integers(1, 3),
    data=st.data(),
)
def test_every_reply_is_what_per_instance_processing_gives_once_in_order(
    layouts: list[list[str]], max_size: int, capacity: int, data: st.DataObject
) -> None:
    policy = BatchPolicy(tuple(range(1, max_size + 1)), max_size, 2.0, 10_000)
    core = BrokerCore(BrokerSettings())
    signature = MethodSignature("predict", INPUTS, (TensorSpec("y"),), policy)
    core.on_worker_message(W1, Ready("model", 1, (signature,), capacity), 0.0)
    sent: dict[int, list[Instance]] = {}
    running: list[Job] = []
    answered: dict[int, list[InstanceOutcome]] = {}
    now = 0.0

    def absorb(out: list[Outgoing]) -> None:
        for item in out:
            message = item.message
            if isinstance(message, Job):
                assert 1 <= count_rows(message.columns) <= max_size
                assert all(part.tensors.keys() == {"x"} for part in message.columns)
                running.append(message)
            else:
                assert isinstance(message, Reply)
                assert message.request_id not in answered, "answered twice"
                assert message.error is None
                answered[message.request_id] = reply_outcomes(message)

    failing: set[float] = set()
    for request_id, kinds in enumerate(layouts, start=1):
        instances = [_instance(kind, request_id * 100.0 + i) for i, kind in enumerate(kinds)]
        sent[request_id] = instances
        failing |= {
            request_id * 100.0 + i
            for i in data.draw(st.sets(st.integers(0, len(kinds) - 1)), label="failing rows")
        }
        absorb(core.on_request(GATEWAY, request(request_id, instances), now))
    failed = frozenset(failing)
    while running or len(answered) < len(sent):
        if running:
            job = running.pop(data.draw(st.integers(0, len(running) - 1), label="job done"))
            absorb(core.on_worker_message(W1, echo_result(job, failed), now))
        now += 0.003  # past the batch window
        absorb(core.tick(now))
    for request_id, instances in sent.items():
        expected = [_expected(inst, failed) for inst in instances]
        got = answered[request_id]
        assert len(got) == len(expected)
        assert all(_same(g, w) for g, w in zip(got, expected, strict=True)), (got, expected)
    assert core.requests.pending == {}
    (route,) = core.status(0, now).stats["routes"]  # type: ignore[misc]
    outcomes = [o for got in answered.values() for o in got]
    assert route["instances"] == len(outcomes)
    assert route["instances_failed"] == sum(isinstance(o, Failure) for o in outcomes)
    assert route["instances_succeeded"] == sum(not isinstance(o, Failure) for o in outcomes)


def _column(req: Request, part: int = 0) -> np.ndarray:
    return np.frombuffer(req.columns[part].tensors["x"].data, np.float32)


def test_a_job_is_views_of_its_requests_buffers_across_requests() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1, 2, 4)), 0.0)
    first, second = request(1, [1.0, 2.0, 3.0, 4.0, 5.0]), request(2, [6.0, 7.0, 8.0])
    ((_, job1),) = jobs(core.on_request(GATEWAY, first, 0.0))
    assert jobs(core.on_request(GATEWAY, second, 0.0)) == []
    ((_, job2),) = jobs(core.on_worker_message(W1, echo_result(job1), 0.001))
    assert [job_values(job1), job_values(job2)] == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    assert [part.count for part in job2.columns] == [1, 3]  # the end of one, all of the other
    for part, req in zip(job2.columns, (first, second), strict=True):
        view = np.frombuffer(part.tensors["x"].data, np.float32)
        assert np.shares_memory(view, _column(req))
    assert np.shares_memory(np.frombuffer(job1.columns[0].tensors["x"].data, np.float32),
                            _column(first))  # fmt: skip
    reply1, reply2 = replies(core.on_worker_message(W1, echo_result(job2), 0.002))
    assert (reply1.request_id, reply2.request_id) == (1, 2)
    assert first_values(reply1) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert first_values(reply2) == [6.0, 7.0, 8.0]
    assert len(reply1.columns) == 2  # a slice of each job's result: never stacked again


def test_columns_that_fail_the_input_rule_fail_their_rows_alone() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(sizes=(1, 2, 4, 8)), 0.0)
    good = stack([instance(1.0), instance(2.0)])
    bad = Columns(2, {"x": to_wire(np.zeros((3, 2), np.float32))})  # 3 rows for 2
    wrong_shape = stack([{"x": to_wire(np.zeros(3, np.float32))}] * 2)
    req = Request(1, "model", "predict", [*good, bad, *wrong_shape, *stack([instance(3.0)])])
    ((_, job),) = jobs(core.on_request(GATEWAY, req, 0.0))
    assert job_values(job) == [1.0, 2.0, 3.0]
    (reply,) = replies(core.on_worker_message(W1, echo_result(job), 0.0))
    stacking = "Given model inputs do not stack: input x: shape [3, 2] does not have the 2 rows "
    mismatch = "Given model input x (index 0) size 12 not match the size 8 defined in model"
    assert first_values(reply) == [
        1.0, 2.0, stacking + "of its columns", stacking + "of its columns", mismatch, mismatch, 3.0
    ]  # fmt: skip
    assert [f.row for f in reply.failures] == [2, 3, 4, 5]


def test_a_request_with_empty_columns_is_refused_whole() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    empty = Columns(0, {"x": to_wire(np.zeros((0, 2), np.float32))})
    req = Request(1, "model", "predict", [*stack([instance(1.0)]), empty])
    (reply,) = replies(core.on_request(GATEWAY, req, 0.0))
    assert reply.error == Failure(
        ErrorKind.INVALID_INPUT, "request columns must hold at least one instance, not 0"
    )
    assert core.requests.pending == {}


def test_failing_columns_larger_than_the_queue_make_the_request_too_large() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(queue=10), 0.0)
    huge = Columns(10**9, {"x": WireTensor("float32", (10**9, 3), b"")})  # bytes of no row
    req = Request(1, "model", "predict", [*stack([instance(1.0)]), huge])
    (reply,) = replies(core.on_request(GATEWAY, req, 0.0))
    assert reply.error == Failure(
        ErrorKind.INVALID_INPUT,
        f"request too large: {10**9 + 1} instances can never fit the queue of servable 'model' "
        "version 1 method 'predict' (limit 10); split it into smaller requests",
    )
    fitting = Columns(10, {"x": WireTensor("float32", (10, 3), b"")})  # fails, but row by row
    req = Request(2, "model", "predict", [*stack([instance(1.0)]), fitting])
    ((_, job),) = jobs(core.on_request(GATEWAY, req, 0.0))
    (reply,) = replies(core.on_worker_message(W1, echo_result(job), 0.0))
    assert [f.row for f in reply.failures] == list(range(1, 11))


def test_an_inconsistent_result_fails_every_row_of_the_job_as_internal() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1, 2, 4)), 0.0)
    ((_, job),) = jobs(core.on_request(GATEWAY, request(1, [1.0, 2.0, 3.0]), 0.0))
    good = echo_result(job)
    twice = RowFailure(1, Failure(ErrorKind.MODEL_ERROR, "x"))
    (reply,) = replies(core.on_worker_message(W1, Result(job.job_id, good.columns, [twice]), 0.0))
    problem = (
        "worker returned a bad result for 3 instances: 3 output rows for 2 successful instances"
    )
    assert reply_outcomes(reply) == [Failure(ErrorKind.INTERNAL, problem)] * 3
    ((_, job),) = jobs(core.on_request(GATEWAY, request(2, [4.0]), 0.0))
    bad_row = RowFailure(5, Failure(ErrorKind.MODEL_ERROR, "x"))
    (reply,) = replies(core.on_worker_message(W1, Result(job.job_id, [], [bad_row]), 0.0))
    (failure,) = reply_outcomes(reply)
    assert failure == Failure(
        ErrorKind.INTERNAL,
        "worker returned a bad result for 1 instances: failed rows [5] are not distinct rows "
        "of 1 in order",
    )


def test_a_lost_workers_split_ranges_run_again_in_order() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1, 2, 4)), 0.0)
    core.on_worker_message(W2, ready(capacity=1, sizes=(1, 2, 4)), 0.0)
    ((peer_a, job_a),) = jobs(
        core.on_request(GATEWAY, request(1, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 0.0)
    )
    ((peer_b, job_b),) = jobs(core.tick(0.003))  # the rest waited for the batch window
    assert (job_values(job_a), job_values(job_b)) == ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0])
    assert jobs(core.on_worker_lost(peer_a, 0.01, "crash")) == []  # the other one is busy
    (_, again), *rest = jobs(
        core.on_worker_message(peer_b, echo_result(job_b, frozenset({6.0})), 0.02)
    )
    assert rest == [] and job_values(again) == [1.0, 2.0, 3.0, 4.0]
    (reply,) = replies(core.on_worker_message(peer_b, echo_result(again), 0.03))
    assert first_values(reply) == [1.0, 2.0, 3.0, 4.0, 5.0, "bad value 6.0"]
    (route,) = core.status(0, 0.03).stats["routes"]  # type: ignore[misc]
    assert (route["redispatched"], route["instances_succeeded"]) == (4, 5)
    assert route["failures"] == {"model_error": 1}
