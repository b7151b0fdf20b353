"""What becomes of the work of a worker that is gone (part of the sans-IO core).

A row range of a lost worker's job goes back to the front of its route's queue, at most
`max_redispatch` times, then its rows fail; when a route's last worker is gone, its queued rows
fail and the route leaves the catalog. Log lines are the core's (`msq.broker.core`).
"""

from __future__ import annotations

import logging

from msq.broker.catalog import Catalog, describe
from msq.broker.records import request_ids
from msq.broker.requests import RequestTable
from msq.broker.routes import QueuedRows, Route
from msq.proto.columns import Outcomes
from msq.proto.errors import ErrorKind, Failure

log = logging.getLogger("msq.broker.core")


def requeue(
    requests: RequestTable,
    route: Route,
    item: QueuedRows,
    reason: str,
    *,
    max_redispatch: int,
) -> None:
    """Queue the rows `item` of a lost worker's job again, at the front; fail them once they
    have been dispatched more than `max_redispatch` times (an answered request's are dropped)."""
    if item.request.done:
        return
    item.attempts += 1
    if item.attempts > max_redispatch:
        problem = f"worker unavailable: {reason}; gave up after {item.attempts} attempts"
        log.warning(
            "instances %d to %d: %s", item.start, item.stop - 1, problem,
            extra={"request_id": item.request.rid},
        )  # fmt: skip
        failure = Failure(ErrorKind.WORKER_UNAVAILABLE, problem)
        requests.settle(item.request, item.start, Outcomes.failed(item.count, failure))
    else:
        route.stats.redispatched += item.count
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
            "%s: failing %d queued instances", failure.message, sum(i.count for i in items),
            extra={"request_ids": request_ids(items)},
        )  # fmt: skip
    for item in items:
        requests.settle(item.request, item.start, Outcomes.failed(item.count, failure))
    catalog.remove(route)
