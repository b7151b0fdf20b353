"""The broker's live view for `msq status`: its workers and routes, driven without sockets."""

from __future__ import annotations

import os

import pytest

from msq.broker.stats import INCARNATION
from msq.proto.messages import (
    BrokerInfo,
    Heartbeat,
    Ready,
    RouteInfo,
    RouteWindow,
    Status,
    WorkerInfo,
)
from msq.proto.wire import decode, encode
from tests.broker.factories import (
    GATEWAY,
    W1,
    W2,
    echo_result,
    jobs,
    new_core,
    ready,
    request,
    signature,
)


def test_the_view_shows_busy_workers_queues_and_the_last_minute() -> None:
    core = new_core(heartbeat_interval_s=1.0)
    core.on_worker_message(W1, Ready("model", 1, (signature(sizes=(2,)),), 1, "gpu:0", 41), 0.0)
    core.on_worker_message(W2, ready(capacity=2), 0.5)
    out = core.on_request(GATEWAY, request(1, [1.0, 2.0]), 10.0)
    out += core.on_request(GATEWAY, request(2, [3.0, 4.0, 5.0, 6.0, 7.0]), 10.0)
    status = core.status(9, 10.25)
    assert status.broker == BrokerInfo(INCARNATION, os.getpid(), 10.25)
    assert sorted(status.workers, key=lambda w: w.worker_id) == [
        WorkerInfo(W1.hex(), "model", 1, "gpu:0", 41, capacity=1, free=0, jobs=1, silent_s=10.25),
        WorkerInfo(W2.hex(), "model", 1, "cpu", 0, capacity=2, free=0, jobs=2, silent_s=9.75),
    ]
    empty = RouteWindow(10.25, requests=2, instances=7, completed=0, p50_ms=None, p99_ms=None)
    assert status.routes == [RouteInfo("model", 1, "predict", 1, 3, 2, empty)]

    for peer, job in jobs(out):
        core.on_worker_message(peer, echo_result(job), 10.5)  # waited 500 ms
    window = core.status(10, 10.5).routes[0].window
    assert (window.completed, window.p50_ms, window.p99_ms) == (6, pytest.approx(500.0), 500.0)


def test_a_lost_worker_and_its_routes_leave_the_view() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(servable="a"), 0.0)
    core.on_worker_message(W2, ready(servable="b"), 0.0)
    core.on_worker_message(W2, Heartbeat(), 2.0)  # W1 stays silent
    assert [w.worker_id for w in core.status(1, 2.0).workers] == [W1.hex(), W2.hex()]
    core.tick(3.5)
    status = core.status(2, 3.5)
    assert [(w.worker_id, w.servable) for w in status.workers] == [(W2.hex(), "b")]
    assert [route.servable for route in status.routes] == ["b"]


def test_the_view_travels_through_the_wire_format() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    core.on_request(GATEWAY, request(1, [1.0]), 1.0)
    status = core.status(7, 2.0)
    assert isinstance(decode(encode(status)), Status)
    assert decode(encode(status)) == status
