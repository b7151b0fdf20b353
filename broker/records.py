"""The core's records of the workers it knows and the jobs they run, the `Job` message made
from a job's row ranges, and the outcomes of each range from the job's `Result`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from msq.broker.routes import PendingRequest, QueuedRows, Route
from msq.proto.columns import Outcomes
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Job, JobTrace, Ready, Result


@dataclass(eq=False, slots=True)
class WorkerState:
    """A registered worker: what it serves, its free credits, its running jobs."""

    worker_id: bytes
    ready: Ready
    credits: int
    last_seen: float
    last_sent: float
    routes: list[Route] = field(default_factory=list)
    jobs: set[int] = field(default_factory=set)
    #: It sent `Drain`: it gets work only while no other worker serves its route.
    draining: bool = False


@dataclass(eq=False, slots=True)
class RunningJob:
    """A job sent to a worker and not yet answered: `items` are its row ranges in job row
    order, `rows` their total."""

    job_id: int
    worker_id: bytes
    route: Route
    items: list[QueuedRows]
    rows: int
    dispatched_at: float


def job_message(job_id: int, method: str, items: list[QueuedRows], now: float) -> Job:
    """The job that runs `items` now: their columns as views of their requests' buffers, and
    the time left until the latest deadline of their requests (the worker drops the job
    unstarted once that has passed)."""
    firsts: dict[PendingRequest, QueuedRows] = {}
    for item in items:
        firsts.setdefault(item.request, item)
    latest = max((pending.deadline for pending in firsts), key=lambda deadline: deadline.at)
    traces = [
        JobTrace(pending.traceparent, (now - first.enqueued_at) * 1000.0)
        for pending, first in firsts.items()
        if pending.traceparent
    ]
    rids = [pending.rid for pending in firsts]
    columns: list[Columns] = [part for item in items for part in item.columns()]
    return Job(job_id, method, columns, latest.timeout_ms(now), rids, traces)


def settled_ranges(job: RunningJob, result: Result) -> Iterator[tuple[QueuedRows, Outcomes]]:
    """Each row range of `job` with its outcomes in `result` (views of the result's columns);
    an inconsistent result fails every row as INTERNAL."""
    outcomes = Outcomes(result.columns, result.failures, job.rows)
    problem = outcomes.problem()
    if problem is not None:
        failure = Failure(
            ErrorKind.INTERNAL, f"worker returned a bad result for {job.rows} instances: {problem}"
        )
        outcomes = Outcomes.failed(job.rows, failure)
    offset = 0
    for item in job.items:
        yield item, outcomes.restrict(offset, offset + item.count)
        offset += item.count


def request_ids(items: Iterable[QueuedRows]) -> list[str]:
    """The request ids of the rows' requests, each once, in order."""
    return list(dict.fromkeys(item.request.rid for item in items))
