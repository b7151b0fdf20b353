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
             "compute_ms": {"sum", "count"},      # the method's execution (wall time)
             "compute_cpu_ms": {"sum", "count"},  # the worker's CPU meanwhile
             "queued", "in_flight"}]}
```

The live view of `msq status` is typed (`Status.broker`, `.workers`, `.routes`): each route keeps
a `LiveWindow` of its last minute, and `broker_info` / `worker_info` describe the rest.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msq.proto.errors import ErrorKind
from msq.proto.messages import BrokerInfo, RouteWindow, WorkerInfo

if TYPE_CHECKING:
    from msq.broker.records import WorkerState

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

    def observe(self, value: float, count: int = 1) -> None:
        """Record `value` `count` times."""
        self.counts[bisect.bisect_left(self.bounds, value)] += count
        self.total += value * count
        self.count += count

    def report(self) -> dict[str, object]:
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append([bound, cumulative])
        return {"sum": self.total, "count": self.count, "buckets": buckets}


#: Random id of this broker process, reported as `BrokerInfo.incarnation`.
INCARNATION = secrets.token_hex(6)
#: Length (s) of the live window `msq status` reports, and of each of its buckets.
WINDOW_S = 60.0
WINDOW_BUCKET_S = 1.0
#: Latency bins of the live window: bin i holds (LATENCY_FLOOR_MS * 2^((i-1)/8), ... * 2^(i/8)],
#: so a percentile is known within 9 %; bin 0 holds everything up to the floor.
LATENCY_FLOOR_MS = 0.01
_BINS_PER_OCTAVE = 8


def latency_bin(ms: float) -> int:
    """The bin of a latency (ms) in the live window's latency histogram."""
    if ms <= LATENCY_FLOOR_MS:
        return 0
    return math.ceil(math.log2(ms / LATENCY_FLOOR_MS) * _BINS_PER_OCTAVE) or 1


def bin_upper_ms(index: int) -> float:
    """The upper bound (ms) of a latency bin."""
    return LATENCY_FLOOR_MS * math.exp2(index / _BINS_PER_OCTAVE)


@dataclass(slots=True)
class _Bucket:
    """What happened on a route during one bucket of time (`slot` says which one)."""

    slot: int
    requests: int = 0
    instances: int = 0
    latencies: Counter[int] = field(default_factory=Counter)
    completed: int = 0
    max_ms: float = 0.0


class LiveWindow:
    """Requests, instances and instance latencies of the last `WINDOW_S`, in time buckets.

    Sans-IO: every call takes `now` (seconds, monotonic). Recording costs O(1); `figures`
    merges the buckets of the window (at most `WINDOW_S / WINDOW_BUCKET_S` of them).
    """

    __slots__ = ("_buckets", "_size")

    def __init__(self) -> None:
        self._size = round(WINDOW_S / WINDOW_BUCKET_S)
        self._buckets: list[_Bucket | None] = [None] * self._size

    def _bucket(self, now: float) -> _Bucket:
        slot = math.floor(now / WINDOW_BUCKET_S)
        bucket = self._buckets[slot % self._size]
        if bucket is None or bucket.slot != slot:
            bucket = self._buckets[slot % self._size] = _Bucket(slot)
        return bucket

    def accepted(self, now: float, instances: int) -> None:
        """A request of `instances` instances was accepted."""
        bucket = self._bucket(now)
        bucket.requests += 1
        bucket.instances += instances

    def completed(self, now: float, queued: Sequence[tuple[float, int]]) -> None:
        """Results came back now for instances (at least one): `queued` holds (when they were
        queued, how many) pairs."""
        bucket = self._bucket(now)
        latencies = bucket.latencies
        for queued_at, count in queued:
            latencies[latency_bin((now - queued_at) * 1000.0)] += count
            bucket.completed += count
        oldest = min(queued_at for queued_at, _ in queued)
        bucket.max_ms = max(bucket.max_ms, (now - oldest) * 1000.0)

    def figures(self, now: float, uptime_s: float) -> RouteWindow:
        """The figures of the buckets within the last `WINDOW_S` before `now` (a broker up
        for `uptime_s`)."""
        newest = math.floor(now / WINDOW_BUCKET_S)
        recent = [
            b for b in self._buckets if b is not None and newest - self._size < b.slot <= newest
        ]
        latencies: Counter[int] = Counter()
        for bucket in recent:
            latencies.update(bucket.latencies)
        completed = sum(b.completed for b in recent)
        max_ms = max((b.max_ms for b in recent), default=0.0)
        return RouteWindow(
            seconds=min(WINDOW_S, uptime_s),
            requests=sum(b.requests for b in recent),
            instances=sum(b.instances for b in recent),
            completed=completed,
            p50_ms=_percentile(latencies, completed, 0.50, max_ms),
            p99_ms=_percentile(latencies, completed, 0.99, max_ms),
        )


def _percentile(bins: Counter[int], count: int, q: float, max_ms: float) -> float | None:
    """The upper bound of the bin holding the q-th of `count` latencies, at most `max_ms`."""
    if count == 0:
        return None
    indices = sorted(bins)
    cumulative = list(itertools.accumulate(bins[index] for index in indices))
    position = bisect.bisect_left(cumulative, math.ceil(q * count))
    return min(bin_upper_ms(indices[position]), max_ms)


def broker_info(uptime_s: float) -> BrokerInfo:
    """This broker process, up for `uptime_s`."""
    return BrokerInfo(INCARNATION, os.getpid(), uptime_s)


def worker_info(worker: WorkerState, now: float) -> WorkerInfo:
    """A registered worker as `msq status` shows it."""
    ready = worker.ready
    return WorkerInfo(
        worker_id=worker.worker_id.hex(),
        servable=ready.servable,
        version=ready.version,
        device=ready.device,
        pid=ready.pid,
        capacity=ready.capacity,
        free=worker.credits,
        jobs=len(worker.jobs),
        silent_s=now - worker.last_seen,
    )


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
    #: Instances sent again after their worker was lost.
    redispatched: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    job_sizes: Counter[int] = field(default_factory=Counter)
    queue_delay_ms: Histogram = field(default_factory=lambda: Histogram(QUEUE_DELAY_BUCKETS_MS))
    compute_ms_sum: float = 0.0
    compute_cpu_ms_sum: float = 0.0
    #: The last minute, for `msq status` (see `LiveWindow`).
    window: LiveWindow = field(default_factory=LiveWindow)

    def instance_failed(self, kind: ErrorKind, count: int = 1) -> None:
        """`count` instances failed with an error of `kind`."""
        self.instances_failed += count
        self.failures[kind.value] += count

    def job_done(self, size: int, compute_ms: float, compute_cpu_ms: float) -> None:
        self.executions += 1
        self.job_sizes[size] += 1
        self.compute_ms_sum += compute_ms
        self.compute_cpu_ms_sum += compute_cpu_ms

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
            "redispatched": self.redispatched,
            "failures": dict(self.failures),
            "job_sizes": {str(size): count for size, count in sorted(self.job_sizes.items())},
            "queue_delay_ms": self.queue_delay_ms.report(),
            "compute_ms": {"sum": self.compute_ms_sum, "count": self.executions},
            "compute_cpu_ms": {"sum": self.compute_cpu_ms_sum, "count": self.executions},
            "queued": queued,
            "in_flight": in_flight,
        }
