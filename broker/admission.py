"""What the broker checks before it accepts work: a request, its instances, a registration.

Pure functions of the message and the route they concern; `msq.broker.core` calls them and
turns a refusal into a reply (or a refused registration).
"""

from __future__ import annotations

import math

from msq.broker.catalog import describe
from msq.broker.routes import Route
from msq.proto.batching import Admission
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Ready, Request


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
