"""What the broker checks before it accepts work (a request, its instances, a registration),
and the admission of a request: refused with a reply, or accepted into its route's queue.

The checks are pure functions of the message and the route they concern; `admit` applies them
to a request (`msq.broker.core` then dispatches the route), and the core turns a refused
registration into a `Disconnect`. Log lines are the core's (`msq.broker.core`).
"""

from __future__ import annotations

import logging
import math

from msq.broker.catalog import Catalog, describe
from msq.broker.requests import RequestTable
from msq.broker.routes import PendingRequest, QueuedInstance, Route
from msq.proto.batching import Admission
from msq.proto.deadline import Deadline, DeadlineSource, resolve_deadline
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import InstanceOutcome, Ready, Request
from msq.proto.validation import check_instance

log = logging.getLogger("msq.broker.core")


def admit(
    requests: RequestTable,
    catalog: Catalog,
    client: bytes,
    request: Request,
    now: float,
    *,
    default_timeout_s: float,
) -> Route | None:
    """Validate `request` from `client` and refuse it, answer it at once (no valid instance, or
    its deadline already passed), or accept it and queue its valid instances; the route they
    joined (for the core to dispatch), else None."""
    rid = request.rid
    if log.isEnabledFor(logging.DEBUG):
        log.debug("request: %d instances for %s.%s version %d", len(request.instances),
                  request.servable, request.method, request.version,
                  extra={"request_id": rid})  # fmt: skip
    route = catalog.resolve(request.servable, request.version, request.method)
    if isinstance(route, Failure):
        requests.reject(client, request.request_id, route, rid=rid)
        return None
    problem = request_problem(request, (client, request.request_id) in requests.pending)
    if problem is not None:
        requests.reject(client, request.request_id, problem, rid=rid)
        return None
    checked = [check_instance(instance, route.signature.inputs) for instance in request.instances]
    valid = sum(not isinstance(item, Failure) for item in checked)
    refusal = queue_refusal(route, valid)
    if refusal is not None:
        requests.reject(client, request.request_id, refusal, route.key.version, rid)
        return None
    deadline = request_deadline(request, now, default_timeout_s)
    outcomes: list[InstanceOutcome | None] = [
        item if isinstance(item, Failure) else None for item in checked
    ]
    pending = PendingRequest(
        client, request.request_id, route, outcomes, valid, deadline,
        rid=rid, traceparent=request.traceparent,
    )  # fmt: skip
    stats = route.stats
    stats.requests += 1
    stats.instances += len(checked)
    stats.window.accepted(now, len(checked))
    for item in checked:
        if isinstance(item, Failure):
            stats.instance_failed(item.kind)
    if valid == 0:
        requests.finish(pending)
        return None
    if deadline.expired(now):
        requests.fail(pending, Failure(ErrorKind.TIMEOUT, "request deadline already passed"))
        return None
    requests.accept(pending)
    eager = route.idle
    for index, item in enumerate(checked):
        if not isinstance(item, Failure):
            route.push(QueuedInstance(pending, index, item, now, eager=eager))
    return route


def request_deadline(request: Request, now: float, default_timeout_s: float) -> Deadline:
    """The request's deadline on the broker's clock: its `timeout_ms` (the time its gateway
    has left), else the default timeout."""
    given = None if request.timeout_ms is None else request.timeout_ms / 1000.0
    return resolve_deadline({DeadlineSource.REQUEST: given}, now, default_s=default_timeout_s)


def request_problem(request: Request, duplicate: bool) -> Failure | None:
    """Why `request` is refused before its instances are looked at (None: it is not).

    `duplicate`: the gateway already has a request in flight with this id.
    """
    if not request.instances:
        return Failure(ErrorKind.INVALID_INPUT, "request has no instances")
    if duplicate:
        return Failure(ErrorKind.INVALID_INPUT, f"duplicate request id {request.request_id}")
    if request.timeout_ms is not None and not math.isfinite(request.timeout_ms):
        return Failure(
            ErrorKind.INVALID_INPUT, f"timeout_ms must be a finite number, not {request.timeout_ms}"
        )
    return None


def queue_refusal(route: Route, count: int) -> Failure | None:
    """Why `count` more instances may not join `route`'s queue (None: they may)."""
    limit = route.policy.max_queue_size
    match route.policy.admit(route.live, count):
        case Admission.TOO_LARGE:
            return Failure(
                ErrorKind.INVALID_INPUT,
                f"request too large: {count} instances can never fit the queue of "
                f"{describe(route.key)} (limit {limit}); split it into smaller requests",
            )
        case Admission.QUEUE_FULL:
            return Failure(
                ErrorKind.QUEUE_FULL,
                f"enqueued requests count exceeds the limit {limit} "
                f"(queue full for {describe(route.key)}; retry later)",
            )
    return None


def registration_problem(ready: Ready) -> str | None:
    """Why a registration is refused (None: it is not). Its methods' batching policies are
    valid: a `BatchPolicy` is checked when it is made, so when it is decoded."""
    if ready.version < 1:
        return f"version must be >= 1, not {ready.version}"
    if ready.capacity < 1:
        return f"capacity must be >= 1, not {ready.capacity}"
    if not ready.methods:
        return "serves no method"
    return None
