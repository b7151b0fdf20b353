"""The broker's scheduling core, driven directly: no sockets, no clock."""

from __future__ import annotations

import pytest

from msq.broker.core import Endpoint
from msq.proto.deadline import DEFAULT_TIMEOUT_S
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Cancel, Disconnect, Heartbeat, Result, StatusQuery
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


def test_request_is_dispatched_and_answered_in_order() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    out = core.on_request(GATEWAY, request(1, [1.0, 2.0, 3.0]), 0.0)
    ((peer, job),) = jobs(out)
    assert peer == W1
    assert job_values(job) == [1.0, 2.0, 3.0]
    (reply,) = replies(core.on_worker_message(W1, echo_result(job), 0.01))
    assert reply.request_id == 1 and reply.version == 1 and reply.error is None
    assert first_values(reply) == [1.0, 2.0, 3.0]
    assert core.requests.pending == {}


def test_unknown_servable_version_and_method_are_rejected_with_serving_messages() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(version=2), 0.0)
    cases = {
        1: request(1, [1.0], servable="nope"),
        2: request(2, [1.0], version=7),
        3: request(3, [1.0], method="nope"),
    }
    messages = {}
    for request_id, req in cases.items():
        (reply,) = replies(core.on_request(GATEWAY, req, 0.0))
        assert reply.error is not None and reply.error.kind is ErrorKind.NOT_FOUND
        messages[request_id] = reply.error.message
    assert messages[1].startswith("servable is not available")
    assert "version 7" in messages[2] and "running versions: [2]" in messages[2]
    assert messages[3].startswith("method is not available")
    assert core.status(0, 0.0).stats["rejected"] == {"not_found": 3}


def test_version_zero_routes_to_the_highest_running_version() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(version=1), 0.0)
    core.on_worker_message(W2, ready(version=3), 0.0)
    ((peer, _),) = jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    assert peer == W2
    ((peer, _),) = jobs(core.on_request(GATEWAY, request(2, [1.0], version=1), 0.0))
    assert peer == W1


def test_invalid_instances_fail_alone_and_never_reach_a_worker() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    one, two = instance(1.0), instance(2.0)
    out = core.on_request(GATEWAY, request(1, [one, {"other": one["x"]}, two]), 0.0)
    ((_, job),) = jobs(out)
    assert job_values(job) == [1.0, 2.0]
    (reply,) = replies(core.on_worker_message(W1, echo_result(job), 0.0))
    assert first_values(reply) == [1.0, "Cannot find input x in instance input", 2.0]


def test_bad_instance_in_a_job_fails_alone() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    ((_, job),) = jobs(core.on_request(GATEWAY, request(1, [1.0, 2.0, 3.0]), 0.0))
    (reply,) = replies(core.on_worker_message(W1, echo_result(job, fail=frozenset({2.0})), 0.0))
    assert first_values(reply) == [1.0, "bad value 2.0", 3.0]
    route = core.status(0, 0.0).stats["routes"][0]  # type: ignore[index]
    assert route["instances_succeeded"] == 2 and route["failures"] == {"model_error": 1}


def test_credits_limit_jobs_in_flight_and_results_return_them() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1,)), 0.0)
    out = core.on_request(GATEWAY, request(1, [1.0, 2.0, 3.0]), 0.0)
    ((_, first),) = jobs(out)
    assert job_values(first) == [1.0]
    ((_, second),) = jobs(core.on_worker_message(W1, echo_result(first), 0.0))
    assert job_values(second) == [2.0]


def test_jobs_coalesce_instances_of_different_requests_up_to_the_batch_size() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1, 2, 4, 8)), 0.0)
    ((_, first),) = jobs(core.on_request(GATEWAY, request(1, [0.5]), 0.0))
    for request_id in range(2, 12):
        assert jobs(core.on_request(GATEWAY, request(request_id, [float(request_id)]), 0.0)) == []
    ((_, batch),) = jobs(core.on_worker_message(W1, echo_result(first), 0.001))
    assert job_values(batch) == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    answered = replies(core.on_worker_message(W1, echo_result(batch), 0.002))
    assert sorted(r.request_id for r in answered) == list(range(2, 10))
    assert all(first_values(r) == [float(r.request_id)] for r in answered)


def test_partial_batch_waits_for_the_window_while_a_job_runs() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=2, delay_ms=5.0), 0.0)
    assert len(jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))) == 1
    assert jobs(core.on_request(GATEWAY, request(2, [2.0, 3.0]), 0.001)) == []
    assert core.next_wakeup(0.001) == 0.001 + 0.005
    assert jobs(core.tick(0.005)) == []
    ((_, job),) = jobs(core.tick(0.006))
    assert job_values(job) == [2.0, 3.0]


def test_a_full_batch_never_waits() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=2, sizes=(1, 2, 4), delay_ms=1000.0), 0.0)
    jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    ((_, job),) = jobs(core.on_request(GATEWAY, request(2, [2.0, 3.0, 4.0, 5.0, 6.0]), 0.0))
    assert job_values(job) == [2.0, 3.0, 4.0, 5.0]


def test_jobs_go_to_the_worker_with_the_most_free_capacity() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1), 0.0)
    core.on_worker_message(W2, ready(capacity=3), 0.0)
    ((peer, _),) = jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    assert peer == W2


def test_lost_worker_work_is_redispatched_to_another_worker() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1), 0.0)
    ((_, lost_job),) = jobs(core.on_request(GATEWAY, request(1, [1.0, 2.0]), 0.0))
    core.on_worker_message(W2, ready(capacity=1), 0.0)
    out = core.on_worker_lost(W1, 0.1, "socket gone")
    ((peer, job),) = jobs(out)
    assert peer == W2 and job_values(job) == job_values(lost_job) == [1.0, 2.0]
    assert replies(out) == []
    assert replies(core.on_worker_message(W1, echo_result(lost_job), 0.15)) == []
    (reply,) = replies(core.on_worker_message(W2, echo_result(job), 0.2))
    assert first_values(reply) == [1.0, 2.0]
    (route,) = core.status(1, 0.3).stats["routes"]  # type: ignore[misc]
    assert route["redispatched"] == 2  # both instances of the lost job


def test_worker_loss_with_no_worker_left_fails_clearly() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1,)), 0.0)
    core.on_request(GATEWAY, request(1, [1.0, 2.0]), 0.0)
    (reply,) = replies(core.on_worker_lost(W1, 0.1, "killed"))
    assert all(
        isinstance(o, Failure) and o.kind is ErrorKind.WORKER_UNAVAILABLE
        for o in reply_outcomes(reply)
    )
    assert "no worker serves" in first_values(reply)[1]  # type: ignore[operator]
    assert core.catalog.servables == {}
    (reply,) = replies(core.on_request(GATEWAY, request(2, [1.0]), 0.2))
    assert reply.error is not None and reply.error.kind is ErrorKind.NOT_FOUND


def test_redispatch_is_capped() -> None:
    core = new_core(max_redispatch=1)
    core.on_worker_message(W1, ready(capacity=1), 0.0)
    core.on_worker_message(W2, ready(capacity=1), 0.0)
    ((peer, _),) = jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    ((second, _),) = jobs(core.on_worker_lost(peer, 0.1, "crash"))
    core.on_worker_message(peer, ready(capacity=1), 0.2)
    (reply,) = replies(core.on_worker_lost(second, 0.3, "crash again"))
    (failure,) = reply_outcomes(reply)
    assert isinstance(failure, Failure) and "gave up after 2 attempts" in failure.message


def test_silent_worker_expires_and_heartbeats_are_sent() -> None:
    core = new_core(heartbeat_interval_s=1.0, heartbeat_liveness=3)
    core.on_worker_message(W1, ready(), 0.0)
    out = core.tick(1.0)
    assert [(o.peer, type(o.message)) for o in out] == [(W1, Heartbeat)]
    core.on_worker_message(W1, Heartbeat(), 2.5)
    core.tick(5.0)
    assert W1 in core.workers
    core.tick(5.6)
    assert W1 not in core.workers


def test_hung_worker_is_dropped_after_the_job_timeout() -> None:
    core = new_core(job_timeout_s=10.0)
    core.on_worker_message(W1, ready(), 0.0)
    core.on_worker_message(W2, ready(), 0.0)
    ((peer, _),) = jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    other = W2 if peer == W1 else W1
    for t in range(1, 11):
        core.on_worker_message(peer, Heartbeat(), float(t))
        core.on_worker_message(other, Heartbeat(), float(t))
    out = core.tick(10.5)
    assert any(o.peer == peer and isinstance(o.message, Disconnect) for o in out)
    ((retry_peer, _),) = jobs(out)
    assert retry_peer == other and peer not in core.workers


def test_unknown_worker_is_told_to_register_again() -> None:
    core = new_core()
    out = core.on_worker_message(W1, Result(5, []), 0.0)
    assert [(o.endpoint, o.peer, type(o.message)) for o in out] == [
        (Endpoint.BACKEND, W1, Disconnect)
    ]


def test_deadline_fails_the_request_and_its_instances_are_never_dispatched() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1,)), 0.0)
    ((_, first),) = jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    assert jobs(core.on_request(GATEWAY, request(2, [2.0], timeout_ms=50), 0.0)) == []
    (reply,) = replies(core.tick(0.06))
    assert reply.request_id == 2
    assert reply.error is not None and reply.error.kind is ErrorKind.TIMEOUT
    assert reply.error.message.startswith("request timed out")
    out = core.on_worker_message(W1, echo_result(first), 0.07)
    assert jobs(out) == []
    assert [r.request_id for r in replies(out)] == [1]


def test_queue_full_is_its_own_error() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1,), queue=3), 0.0)
    core.on_request(GATEWAY, request(1, [1.0, 2.0, 3.0]), 0.0)
    (reply,) = replies(core.on_request(GATEWAY, request(2, [4.0, 5.0]), 0.0))
    assert reply.error is not None and reply.error.kind is ErrorKind.QUEUE_FULL
    assert reply.error.message == (
        "enqueued requests count exceeds the limit 3 (queue full for servable 'model' "
        "version 1 method 'predict'; retry later)"
    )
    assert reply.version == 1
    assert core.status(0, 0.0).stats["rejected"] == {"queue_full": 1}


def test_a_request_that_can_never_fit_the_queue_is_invalid_input_not_queue_full() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1,), queue=3), 0.0)
    (reply,) = replies(core.on_request(GATEWAY, request(1, [1.0, 2.0, 3.0, 4.0]), 0.0))
    assert reply.error is not None and reply.error.kind is ErrorKind.INVALID_INPUT
    assert reply.error.message == (
        "request too large: 4 instances can never fit the queue of servable 'model' version 1 "
        "method 'predict' (limit 3); split it into smaller requests"
    )
    assert reply.version == 1
    # only valid instances count: a request whose extra instance is invalid still fits
    fitting = request(2, [instance(1.0), instance(2.0), instance(3.0), {"z": instance(1.0)["x"]}])
    (job_peer, job), *_ = jobs(core.on_request(GATEWAY, fitting, 0.0))
    assert job_peer == W1 and job_values(job) == [1.0]
    # a request as large as the whole queue fits an empty one, and gets "queue full" otherwise
    (full,) = replies(core.on_request(GATEWAY, request(3, [5.0, 6.0, 7.0]), 0.0))
    assert full.error is not None and full.error.kind is ErrorKind.QUEUE_FULL
    assert core.status(0, 0.0).stats["rejected"] == {"invalid_input": 1, "queue_full": 1}


def test_cancel_drops_queued_instances_without_a_reply() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1,)), 0.0)
    ((_, first),) = jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    core.on_request(GATEWAY, request(2, [2.0, 3.0]), 0.0)
    assert core.on_cancel(GATEWAY, Cancel(2), 0.0) == []
    out = core.on_worker_message(W1, echo_result(first), 0.1)
    assert [r.request_id for r in replies(out)] == [1]
    assert jobs(out) == []


def test_broker_overrides_apply_on_top_of_the_announced_policy() -> None:
    core = new_core(overrides={"*": {"max_queue_delay_ms": 7.0}})
    core.on_worker_message(W1, ready(delay_ms=2.0, queue=10), 0.0)
    status = core.on_status_query(GATEWAY, StatusQuery(9), 0.0)[0].message
    (info,) = status.servables  # type: ignore[union-attr]
    assert info.workers == 1
    assert info.methods[0].batching.max_queue_delay_ms == 7.0
    assert info.methods[0].batching.max_queue_size == 10


def test_shutdown_answers_every_pending_request() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    core.on_request(GATEWAY, request(1, [1.0]), 0.0)
    (reply,) = replies(core.shutdown())
    assert reply.error is not None and reply.error.message == "broker is shutting down"


def test_answered_requests_are_not_kept_until_their_deadline() -> None:
    core = new_core(default_timeout_s=300.0)
    core.on_worker_message(W1, ready(capacity=1, sizes=(1,)), 0.0)
    for request_id in range(1, 5001):
        ((_, job),) = jobs(core.on_request(GATEWAY, request(request_id, [1.0]), 0.0))
        (reply,) = replies(core.on_worker_message(W1, echo_result(job), 0.0))
        assert reply.request_id == request_id
    assert core.requests.pending == {}
    assert len(core.requests.deadlines) <= 1024 + 1  # stale entries are pruned, not kept for 300 s


def test_a_job_carries_the_time_left_until_the_latest_deadline_of_its_requests() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1, 2, 4, 8)), 0.0)
    ((_, first),) = jobs(core.on_request(GATEWAY, request(1, [1.0], timeout_ms=100.0), 0.0))
    assert first.timeout_ms == 100.0
    core.on_request(GATEWAY, request(2, [2.0], timeout_ms=500.0), 0.010)  # deadline 0.51
    core.on_request(GATEWAY, request(3, [3.0], timeout_ms=200.0), 0.020)  # deadline 0.22
    ((_, second),) = jobs(core.on_worker_message(W1, echo_result(first), 0.040))
    assert job_values(second) == [2.0, 3.0]
    assert second.timeout_ms == pytest.approx(470.0)


def test_without_a_timeout_the_system_default_applies_and_redispatch_carries_the_rest() -> None:
    core = new_core()
    assert core.settings.default_timeout_s == DEFAULT_TIMEOUT_S
    core.on_worker_message(W1, ready(), 0.0)
    core.on_worker_message(W2, ready(), 0.0)
    ((lost, job),) = jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    assert job.timeout_ms == DEFAULT_TIMEOUT_S * 1000.0
    ((_, again),) = jobs(core.on_worker_lost(lost, 2.5, "gone"))
    assert again.timeout_ms == pytest.approx((DEFAULT_TIMEOUT_S - 2.5) * 1000.0)


def test_a_timeout_that_is_not_a_finite_number_is_invalid_input() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    for request_id, timeout_ms in ((1, float("nan")), (2, float("inf"))):
        (reply,) = replies(
            core.on_request(GATEWAY, request(request_id, [1.0], timeout_ms=timeout_ms), 0.0)
        )
        assert reply.error == Failure(
            ErrorKind.INVALID_INPUT, f"timeout_ms must be a finite number, not {timeout_ms}"
        )


def test_route_statistics_sum_the_workers_compute_time_and_cpu() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    for rid, (wall_ms, cpu_ms) in enumerate([(2.0, 3.5), (1.0, 0.25)], start=1):
        ((_, job),) = jobs(core.on_request(GATEWAY, request(rid, [1.0]), 0.0))
        answer = echo_result(job)
        result = Result(job.job_id, answer.columns, answer.failures, wall_ms, cpu_ms)
        core.on_worker_message(W1, result, 0.1)
    status = core.on_status_query(GATEWAY, StatusQuery(9), 0.2)[0].message
    (route,) = status.stats["routes"]  # type: ignore[union-attr]
    assert route["compute_ms"] == {"sum": 3.0, "count": 2}
    assert route["compute_cpu_ms"] == {"sum": 3.75, "count": 2}
