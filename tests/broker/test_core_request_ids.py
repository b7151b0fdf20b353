"""The broker core carries request ids into jobs and names them in its log lines."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from msq.proto.messages import Request
from tests.broker.factories import GATEWAY, W1, W2, echo_result, jobs, new_core, ready, request


def tagged(request_id: int, values: list[float], rid: str, **kwargs: float) -> Request:
    return dataclasses.replace(request(request_id, values, **kwargs), rid=rid)  # type: ignore[arg-type]


def records(caplog: pytest.LogCaptureFixture, field: str) -> list[tuple[str, object]]:
    return [(r.getMessage(), getattr(r, field)) for r in caplog.records if hasattr(r, field)]


def test_a_job_carries_the_ids_of_its_requests_once_each_in_order() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1, 2, 4, 8)), 0.0)
    ((_, first),) = jobs(core.on_request(GATEWAY, tagged(1, [1.0], "a"), 0.0))
    assert first.rids == ["a"]
    core.on_request(GATEWAY, tagged(2, [2.0, 3.0], "b"), 0.0)
    core.on_request(GATEWAY, tagged(3, [4.0], "c"), 0.0)
    core.on_request(GATEWAY, tagged(4, [5.0, 6.0], "b2"), 0.0)
    assert jobs(core.on_worker_message(W1, echo_result(first), 0.001)) == []  # window open
    ((_, batch),) = jobs(core.tick(0.01))
    assert batch.rids == ["b", "c", "b2"]


def test_request_job_and_reply_lines_name_the_request_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "msq.broker.core")
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1), 0.0)
    ((_, job),) = jobs(core.on_request(GATEWAY, tagged(1, [1.0], "rid-1"), 0.0))
    core.on_worker_message(W1, echo_result(job), 0.01)
    assert records(caplog, "request_id") == [
        ("request: 1 instances for model.predict version 0", "rid-1"),
        ("reply: done", "rid-1"),
    ]
    ((message, ids),) = records(caplog, "request_ids")
    assert message.startswith(f"job {job.job_id} to worker {W1.hex()}: 1 instances") and ids == [
        "rid-1"
    ]


def test_refusals_timeouts_and_lost_workers_name_their_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "msq.broker.core")
    core = new_core()
    core.on_request(GATEWAY, tagged(9, [1.0], "unknown", servable="nope"), 0.0)  # type: ignore[arg-type]
    refused = "request refused (not_found): servable is not available: 'nope' is not served"
    assert (refused, "unknown") in records(caplog, "request_id")
    core.on_worker_message(W1, ready(capacity=1, sizes=(1,)), 0.0)
    core.on_worker_message(W2, ready(capacity=1, sizes=(1,)), 0.0)
    ((peer, _),) = jobs(core.on_request(GATEWAY, tagged(1, [1.0], "first"), 0.0))
    core.on_request(GATEWAY, tagged(2, [2.0], "second"), 0.0)
    core.on_request(GATEWAY, tagged(3, [3.0], "late", timeout_ms=50.0), 0.0)
    caplog.clear()
    core.tick(0.06)
    ((_, rid),) = [
        (m, r) for m, r in records(caplog, "request_id") if m.startswith("request timed out")
    ]
    assert rid == "late"
    caplog.clear()
    core.on_worker_lost(peer, 0.07, "socket gone")
    (lost,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert lost.getMessage() == (
        f"lost worker {peer.hex()} (model): socket gone; re-dispatching 1 running jobs"
    )
    assert lost.request_ids == ["first"]  # type: ignore[attr-defined]


def test_a_job_carries_the_trace_context_and_queue_time_of_its_traced_requests() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1, sizes=(1, 2, 4, 8)), 0.0)
    ((_, first),) = jobs(core.on_request(GATEWAY, tagged(1, [1.0], "a"), 0.0))
    assert first.traces == []
    traced = dataclasses.replace(tagged(2, [2.0, 3.0], "b"), traceparent="00-t-s-01")
    core.on_request(GATEWAY, traced, 0.001)
    core.on_request(GATEWAY, tagged(3, [4.0], "c"), 0.002)
    core.on_worker_message(W1, echo_result(first), 0.0025)
    ((_, batch),) = jobs(core.tick(0.0035))
    assert batch.rids == ["b", "c"]
    ((trace),) = batch.traces
    assert trace.traceparent == "00-t-s-01" and trace.queued_ms == pytest.approx(2.5)
