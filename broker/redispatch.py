"""What becomes of the work of a worker that is gone (part of the sans-IO core).

An instance of a lost worker's job goes back to the front of its route's queue, at most
`max_redispatch` times, then fails; when a route's last worker is gone, its queued instances fail
and the route leaves the catalog. Log lines are the core's (`msq.broker.core`).
"""

from __future__ import annotations

import logging

from msq.broker.catalog import Catalog, describe
from msq.broker.records import request_ids
from msq.broker.requests import RequestTable
from msq.broker.routes import QueuedInstance, Route
from msq.proto.errors import ErrorKind, Failure

log = logging.getLogger("msq.broker.core")


def requeue(
    requests: RequestTable,
    route: Route,
    item: QueuedInstance,
    reason: str,
    *,
    max_redispatch: int,
) -> None:
    """Queue `item` of a lost worker's job again, at the front; fail it once it has been
    dispatched more than `max_redispatch` times (an answered request's item is dropped)."""
    if item.request.done:
        return
    item.attempts += 1
    if item.attempts > max_redispatch:
        problem = f"worker unavailable: {reason}; gave up after {item.attempts} attempts"
        log.warning("instance %d: %s", item.index, problem, extra={"request_id": item.request.rid})
        requests.settle(item.request, item.index, Failure(ErrorKind.WORKER_UNAVAILABLE, problem))
    else:
        route.stats.redispatched += 1
        route.push(item, front=True)


def retire(requests: RequestTable, catalog: Catalog, route: Route) -> None:
    """The last worker of a route is gone: fail what waits for it and unroute it."""
    failure = Failure(
        ErrorKind.WORKER_UNAVAILABLE,
        f"worker unavailable: no worker serves {describe(route.key)} any more",
    )
    items = route.drain()
    if items:
        log.warning(
            "%s: failing %d queued instances", failure.message, len(items),
            extra={"request_ids": request_ids(items)},
        )  # fmt: skip
    for item in items:
        requests.settle(item.request, item.index, failure)
    catalog.remove(route)
