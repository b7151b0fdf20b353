"""Batching and request statistics kept by the broker, reported in `Status.stats`.

Shape of the report (plain msgpack/JSON data):

```
{"uptime_s": float,
 "rejected": {error kind: requests refused before queueing},
 "routes": [{"servable", "version", "method",
             "requests", "instances",            # accepted
             "executions",                       # jobs completed
             "instances_succeeded", "instances_failed",
             "failures": {error kind: instances},
             "job_sizes": {"n": jobs with n real instances},
             "queue_delay_ms": {"sum", "count", "buckets": [[upper_ms, cumulative], ...]},
             "compute_ms": {"sum", "count"},
             "queued", "in_flight"}]}
```
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

from msq.proto.errors import ErrorKind

#: Upper bounds (ms) of the queue-delay histogram buckets; the last bucket is +inf.
QUEUE_DELAY_BUCKETS_MS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
)  # fmt: skip


@dataclass(slots=True)
class Histogram:
    """Cumulative-on-report histogram with fixed bucket bounds."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def report(self) -> dict[str, object]:
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append([bound, cumulative])
        return {"sum": self.total, "count": self.count, "buckets": buckets}


@dataclass(slots=True)
class RouteStats:
    """Counters of one (servable, version, method)."""

    servable: str
    version: int
    method: str
    requests: int = 0
    instances: int = 0
    executions: int = 0
    instances_succeeded: int = 0
    instances_failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    job_sizes: Counter[int] = field(default_factory=Counter)
    queue_delay_ms: Histogram = field(default_factory=lambda: Histogram(QUEUE_DELAY_BUCKETS_MS))
    compute_ms_sum: float = 0.0

    def instance_failed(self, kind: ErrorKind) -> None:
        self.instances_failed += 1
        self.failures[kind.value] += 1

    def job_done(self, size: int, compute_ms: float) -> None:
        self.executions += 1
        self.job_sizes[size] += 1
        self.compute_ms_sum += compute_ms

    def report(self, queued: int, in_flight: int) -> dict[str, object]:
        return {
            "servable": self.servable,
            "version": self.version,
            "method": self.method,
            "requests": self.requests,
            "instances": self.instances,
            "executions": self.executions,
            "instances_succeeded": self.instances_succeeded,
            "instances_failed": self.instances_failed,
            "failures": dict(self.failures),
            "job_sizes": {str(size): count for size, count in sorted(self.job_sizes.items())},
            "queue_delay_ms": self.queue_delay_ms.report(),
            "compute_ms": {"sum": self.compute_ms_sum, "count": self.executions},
            "queued": queued,
            "in_flight": in_flight,
        }
