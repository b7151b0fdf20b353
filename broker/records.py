"""The broker core's records of the workers it knows and the jobs they run."""

from __future__ import annotations

from dataclasses import dataclass, field

from msq.broker.routes import QueuedInstance, Route
from msq.proto.messages import Ready


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


@dataclass(eq=False, slots=True)
class RunningJob:
    """A job sent to a worker and not yet answered."""

    job_id: int
    worker_id: bytes
    route: Route
    items: list[QueuedInstance]
    dispatched_at: float
