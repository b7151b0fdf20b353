"""The broker core's records of the workers it knows and the jobs they run, and the `Job`
message made from a job's instances."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from msq.broker.routes import PendingRequest, QueuedInstance, Route
from msq.proto.messages import Job, JobTrace, Ready


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
    """A job sent to a worker and not yet answered."""

    job_id: int
    worker_id: bytes
    route: Route
    items: list[QueuedInstance]
    dispatched_at: float


def job_message(job_id: int, method: str, items: list[QueuedInstance], now: float) -> Job:
    """The job that runs `items` now: it carries the time left until the latest deadline of
    their requests (the worker drops it unstarted once that has passed)."""
    firsts: dict[PendingRequest, QueuedInstance] = {}
    for item in items:
        firsts.setdefault(item.request, item)
    latest = max((pending.deadline for pending in firsts), key=lambda deadline: deadline.at)
    traces = [
        JobTrace(pending.traceparent, (now - first.enqueued_at) * 1000.0)
        for pending, first in firsts.items()
        if pending.traceparent
    ]
    rids = [pending.rid for pending in firsts]
    payloads = [item.payload for item in items]
    return Job(job_id, method, payloads, latest.timeout_ms(now), rids, traces)


def request_ids(items: Iterable[QueuedInstance]) -> list[str]:
    """The request ids of the instances' requests, each once, in order."""
    return list(dict.fromkeys(item.request.rid for item in items))
