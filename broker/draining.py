"""The broker core's rules for draining workers (a worker that sent `Drain`).

A draining worker gets work only when every worker of its route drains (so the last workers of
a version finish its queue before they go), and it may go once it holds no job and nothing waits
for it; the core then unroutes it and answers `Drain("drained")`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from msq.broker.records import WorkerState
from msq.broker.routes import Route

#: The core's logger: these lines are the core's.
log = logging.getLogger("msq.broker.core")


def start(worker: WorkerState, reason: str) -> None:
    """Mark `worker` draining, on each of its routes too."""
    worker.draining = True
    for route in worker.routes:
        route.draining.add(worker.worker_id)
    log.info(
        "worker %s (%s version %d) drains (%s): %d running jobs",
        worker.worker_id.hex(), worker.ready.servable, worker.ready.version,
        reason or "leaving", len(worker.jobs),
    )  # fmt: skip


def drained(worker: WorkerState) -> bool:
    """A draining worker holds no job, and nothing waits for it: each of its routes has
    another worker that does not drain, or an empty queue."""
    return not worker.jobs and all(r.accepting or r.live == 0 for r in worker.routes)


def free_worker(route: Route, workers: Mapping[bytes, WorkerState]) -> WorkerState | None:
    """The route's worker with the most free credits; a draining one only when every
    worker of the route drains (it finishes the queue before it goes)."""
    best: WorkerState | None = None
    for worker_id in (route.workers - route.draining) or route.workers:
        worker = workers[worker_id]
        if worker.credits > 0 and (best is None or worker.credits > best.credits):
            best = worker
    return best
