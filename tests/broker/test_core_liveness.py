"""The broker core's side of failure detection, driven directly: it answers each gateway
link's heartbeat with its own incarnation, heartbeats workers with it, forgets a
silent gateway link together with its requests, and tells gateway links when it shuts down."""

from __future__ import annotations

from msq.broker.core import BrokerCore, Endpoint
from msq.broker.settings import BrokerSettings
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Disconnect, Heartbeat, Reply
from tests.broker.factories import GATEWAY, W1, echo_result, jobs, ready, replies, request

OTHER = b"gateway-2"


def new_core() -> BrokerCore:
    return BrokerCore(BrokerSettings(), incarnation="abc123")


def test_a_gateway_heartbeat_is_answered_at_once_with_the_incarnation() -> None:
    core = new_core()
    out = core.on_gateway_heartbeat(GATEWAY, 0.5)
    assert [(o.endpoint, o.peer, o.message) for o in out] == [
        (Endpoint.FRONTEND, GATEWAY, Heartbeat("abc123"))
    ]


def test_worker_heartbeats_carry_the_incarnation() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    out = core.tick(1.0)
    assert [(o.endpoint, o.peer, o.message) for o in out] == [
        (Endpoint.BACKEND, W1, Heartbeat("abc123"))
    ]


def test_a_silent_gateway_link_is_forgotten_with_its_requests() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(capacity=1), 0.0)
    core.on_gateway_heartbeat(GATEWAY, 0.0)
    core.on_gateway_heartbeat(OTHER, 0.0)
    ((_, first),) = jobs(core.on_request(GATEWAY, request(1, [1.0]), 0.0))
    core.on_request(GATEWAY, request(2, [2.0]), 0.0)  # queued: the worker has no credit
    core.on_request(OTHER, request(7, [7.0]), 0.0)
    for t in (1.0, 2.0, 3.0):
        core.on_gateway_heartbeat(OTHER, t)
        core.on_worker_message(W1, Heartbeat(), t)
        core.tick(t)
    assert set(core.gateways) == {GATEWAY, OTHER}  # silent for exactly 3 s: not yet
    core.on_gateway_heartbeat(OTHER, 3.1)
    core.tick(3.1)  # GATEWAY silent for 3.1 s > 3 s
    assert set(core.gateways) == {OTHER}
    assert set(core.requests.pending) == {(OTHER, 7)}
    # The running job of the forgotten request completes without a reply to anyone; the freed
    # credit goes to the other gateway's request.
    out = core.on_worker_message(W1, echo_result(first), 3.2)
    assert replies(out) == []
    ((_, job),) = jobs(out)
    out = core.on_worker_message(W1, echo_result(job), 3.3)
    assert [(o.peer, o.message.request_id) for o in out if o.endpoint is Endpoint.FRONTEND] == [
        (OTHER, 7)
    ]


def test_at_shutdown_gateway_links_are_told_and_other_requests_answered() -> None:
    core = new_core()
    core.on_worker_message(W1, ready(), 0.0)
    core.on_gateway_heartbeat(GATEWAY, 0.0)
    core.on_request(GATEWAY, request(1, [1.0]), 0.0)
    core.on_request(OTHER, request(2, [2.0]), 0.0)  # a peer that does not heartbeat
    out = core.shutdown()
    leaving = "broker is shutting down"
    assert [(o.peer, o.message) for o in out] == [
        (GATEWAY, Disconnect(leaving)),
        (OTHER, Reply(2, 1, error=Failure(ErrorKind.WORKER_UNAVAILABLE, leaving))),
    ]


def test_the_next_wakeup_covers_a_gateway_links_expiry() -> None:
    core = new_core()
    core = BrokerCore(BrokerSettings(heartbeat_interval_s=10.0, heartbeat_liveness=1))
    core.on_gateway_heartbeat(GATEWAY, 0.0)
    core.on_gateway_heartbeat(GATEWAY, 4.0)
    assert core.next_wakeup(4.0) == 14.0
