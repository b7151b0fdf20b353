"""What the broker checks before it accepts work (a request, its columns, a registration),
and the admission of a request: refused with a reply, or accepted into its route's queue as
row ranges (a column that fails the input rule fails its rows alone).

The checks are pure functions of the message and the route they concern; `admit` applies them
to a request (`msq.broker.core` then dispatches the route), and the core turns a refused
registration into a `Disconnect`. Log lines are the core's (`msq.broker.core`).
"""

from __future__ import annotations

import logging
import math

from msq.broker.catalog import Catalog, describe
from msq.broker.requests import RequestTable
from msq.broker.routes import PendingRequest, QueuedRows, Route
from msq.proto.batching import Admission
from msq.proto.columns import Outcomes, count_rows
from msq.proto.deadline import Deadline, DeadlineSource, resolve_deadline
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Ready, Request
from msq.proto.validation import check_columns

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
    its deadline already passed), or accept it and queue its valid rows; the route they
    joined (for the core to dispatch), else None."""
    rid = request.rid
    count = count_rows(request.columns)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("request: %d instances for %s.%s version %d", count,
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
    checked = [check_columns(part, route.signature.inputs) for part in request.columns]
    valid = sum(part.count for part in checked if isinstance(part, Columns))
    # Only valid rows count, but failing ones are answered one by one: a failing `Columns`
    # larger than the queue (its count need not be backed by bytes) makes the request too large.
    oversized = any(
        isinstance(part, Failure) and sent.count > route.policy.max_queue_size
        for part, sent in zip(checked, request.columns, strict=True)
    )
    refusal = queue_refusal(route, count if oversized else valid)
    if refusal is not None:
        requests.reject(client, request.request_id, refusal, route.key.version, rid)
        return None
    deadline = request_deadline(request, now, default_timeout_s)
    parts = [
        part if isinstance(part, Columns) else sent
        for part, sent in zip(checked, request.columns, strict=True)
    ]
    pending = PendingRequest(
        client, request.request_id, route, parts, count, deadline,
        rid=rid, traceparent=request.traceparent,
    )  # fmt: skip
    stats = route.stats
    stats.requests += 1
    stats.instances += count
    stats.window.accepted(now, count)
    ranges = _valid_ranges(pending, checked)
    if valid == 0:
        requests.finish(pending)
        return None
    if deadline.expired(now):
        requests.fail(pending, Failure(ErrorKind.TIMEOUT, "request deadline already passed"))
        return None
    requests.accept(pending)
    eager = route.idle
    for start, stop in ranges:
        route.push(QueuedRows(pending, start, stop, now, eager=eager))
    return route


def _valid_ranges(
    pending: PendingRequest, checked: list[Failure | Columns]
) -> list[tuple[int, int]]:
    """Settle the rows of the columns that failed admission (each row fails alone); the row
    ranges of the runs of valid columns."""
    ranges: list[tuple[int, int]] = []
    row = 0
    for part, kept in zip(checked, pending.columns, strict=True):
        stop = row + kept.count
        if isinstance(part, Failure):
            pending.settle(row, Outcomes.failed(kept.count, part))
        elif ranges and ranges[-1][1] == row:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((row, stop))
        row = stop
    return ranges


def request_deadline(request: Request, now: float, default_timeout_s: float) -> Deadline:
    """The request's deadline on the broker's clock: its `timeout_ms` (the time its gateway
    has left), else the default timeout."""
    given = None if request.timeout_ms is None else request.timeout_ms / 1000.0
    return resolve_deadline({DeadlineSource.REQUEST: given}, now, default_s=default_timeout_s)


def request_problem(request: Request, duplicate: bool) -> Failure | None:
    """Why `request` is refused before its instances are looked at (None: it is not).

    `duplicate`: the gateway already has a request in flight with this id.
    """
    if not request.columns:
        return Failure(ErrorKind.INVALID_INPUT, "request has no instances")
    empty = next((part.count for part in request.columns if part.count < 1), None)
    if empty is not None:
        return Failure(
            ErrorKind.INVALID_INPUT, f"request columns must hold at least one instance, not {empty}"
        )
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
