"""Draining workers and the relay of model control, driven directly: no sockets, no clock."""

from __future__ import annotations

from msq.broker.control import NOT_EXPLICIT
from msq.broker.core import Endpoint, Outgoing
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    ControllerReady,
    Drain,
    RepositoryAnswer,
    RepositoryCommand,
    RepositoryModel,
)
from tests.broker.factories import (
    GATEWAY,
    echo_result,
    first_values,
    jobs,
    new_core,
    ready,
    replies,
    request,
)

W1, W2 = b"w1", b"w2"
CONTROLLER, OTHER_GATEWAY = b"controller", b"gateway-2"


def drains(out: list[Outgoing]) -> list[bytes]:
    """The workers told they drained."""
    return [o.peer for o in out if o.endpoint is Endpoint.BACKEND and isinstance(o.message, Drain)]


def test_version_zero_moves_off_a_draining_version_that_finishes_its_running_job() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(version=1), 0.0)
    core.on_worker_message(W2, ready(version=2), 0.0)
    ((worker, running),) = jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    assert worker == W2
    assert drains(core.on_worker_message(W2, Drain("worker shutting down"), 0.1)) == []
    assert [info.version for info in core.status(0, 0.1).servables] == [1]
    ((worker, _),) = jobs(core.on_request(GATEWAY, request(2, [2.0]), 0.1))
    assert worker == W1
    out = core.on_worker_message(W2, echo_result(running), 0.2)
    assert [first_values(reply) for reply in replies(out)] == [[1.0]]
    assert drains(core.tick(0.2)) == [W2]
    assert W2 not in core.workers
    (gone,) = replies(core.on_request(GATEWAY, request(3, [3.0], version=2), 0.3))
    assert gone.error == Failure(
        ErrorKind.NOT_FOUND,
        "servable is not available: 'model' version 2 is not served (running versions: [1])",
    )


def test_the_last_worker_of_a_version_finishes_its_queue_before_it_goes() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(version=1, capacity=1, sizes=(1,)), 0.0)
    out = core.on_request(GATEWAY, request(1, [1.0, 2.0]), 0.0)
    ((_, first),) = jobs(out)
    assert drains(core.on_worker_message(W1, Drain(), 0.1)) == []
    out = core.on_worker_message(W1, echo_result(first), 0.2)
    ((_, second),) = jobs(out)
    assert drains(core.tick(0.2)) == []
    out = core.on_worker_message(W1, echo_result(second), 0.3)
    assert [first_values(reply) for reply in replies(out)] == [[1.0, 2.0]]
    assert drains(core.tick(0.3)) == [W1]
    assert core.catalog.servables == {}


def test_an_idle_draining_worker_is_released_at_once_and_others_keep_the_route() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(version=1), 0.0)
    core.on_worker_message(W2, ready(version=1), 0.0)
    assert drains(core.on_worker_message(W1, Drain(), 0.1)) == [W1]
    assert [(info.version, info.workers) for info in core.status(0, 0.1).servables] == [(1, 1)]


def test_repository_commands_are_answered_by_the_broker_alone_then_relayed() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(version=3), 0.0)
    (index,) = core.on_control(GATEWAY, RepositoryCommand(6, "index"), 0.0)
    running = [RepositoryModel("model", "3", "READY")]
    assert index == Outgoing(Endpoint.FRONTEND, GATEWAY, RepositoryAnswer(6, running))
    (refused,) = core.on_control(GATEWAY, RepositoryCommand(7, "load", "model"), 0.0)
    assert refused == Outgoing(
        Endpoint.FRONTEND,
        GATEWAY,
        RepositoryAnswer(7, error=Failure(ErrorKind.INVALID_INPUT, NOT_EXPLICIT)),
    )
    assert core.on_control(CONTROLLER, ControllerReady("explicit"), 0.0) == []
    (first,) = core.on_control(GATEWAY, RepositoryCommand(7, "load", "add"), 0.0)
    (second,) = core.on_control(OTHER_GATEWAY, RepositoryCommand(7, "index"), 0.0)
    assert first == Outgoing(Endpoint.FRONTEND, CONTROLLER, RepositoryCommand(1, "load", "add"))
    assert second == Outgoing(Endpoint.FRONTEND, CONTROLLER, RepositoryCommand(2, "index"))
    models = [RepositoryModel("add", "1", "READY")]
    (answer,) = core.on_control(CONTROLLER, RepositoryAnswer(2, models), 0.1)
    assert answer == Outgoing(Endpoint.FRONTEND, OTHER_GATEWAY, RepositoryAnswer(7, models))
    assert core.on_control(GATEWAY, RepositoryAnswer(1), 0.1) == []  # not the controller
    (loaded,) = core.on_control(CONTROLLER, RepositoryAnswer(1), 0.2)
    assert loaded == Outgoing(Endpoint.FRONTEND, GATEWAY, RepositoryAnswer(7))
    assert core.on_control(CONTROLLER, RepositoryAnswer(1), 0.2) == []  # answered already
