"""The broker's statistics as Prometheus metric families, built from a `Status`.

One translation for both places that expose them: the broker's own `/metrics`
(`--metrics-port`), published by its loop, and the REST gateway's `/metrics`, which relays
the broker's `Status`. Names and labels are listed in docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from msq.proto.messages import Status

#: Upper bounds of the job-size histogram's buckets (instances per job).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_ROUTE_LABELS = ("servable", "version", "method")


def broker_metrics(status: Status | None) -> Iterator[Metric]:
    """The broker's statistics as Prometheus metric families."""
    up = GaugeMetricFamily("msq_broker_up", "Whether the broker answered the status query")
    up.add_metric([], 0.0 if status is None else 1.0)
    yield up
    if status is None:
        return
    stats = status.stats
    uptime = GaugeMetricFamily("msq_broker_uptime_seconds", "Seconds since the broker started")
    uptime.add_metric([], _number(stats.get("uptime_s")))
    yield uptime
    rejected = CounterMetricFamily(
        "msq_broker_rejected_requests",
        "Requests refused before queueing, by reason",
        labels=["kind"],
    )
    for kind, count in _mapping(stats.get("rejected")).items():
        rejected.add_metric([str(kind)], _number(count))
    yield rejected
    workers = GaugeMetricFamily(
        "msq_servable_workers", "Workers serving a servable version", labels=["servable", "version"]
    )
    for info in status.servables:
        workers.add_metric([info.servable, str(info.version)], info.workers)
    yield workers
    routes = stats.get("routes")
    yield from route_metrics(routes if isinstance(routes, list) else [])


_ROUTE_COUNTERS = {
    "requests": "Requests accepted",
    "instances": "Instances accepted",
    "executions": "Jobs (batches) completed; instances / executions is the mean batch size",
    "instances_succeeded": "Instances answered with a result",
    "instances_failed": "Instances answered with an error",
    "redispatched": "Instances sent again after their worker was lost",
}
_ROUTE_GAUGES = {
    "queued": ("msq_route_queued_instances", "Instances waiting in the queue now"),
    "in_flight": ("msq_route_in_flight_jobs", "Jobs running on workers now"),
}


def route_metrics(routes: list[Any]) -> Iterator[Metric]:
    """Metric families of the broker's per-route statistics."""
    routes = [route for route in routes if isinstance(route, Mapping)]
    labels = [[str(r.get(key, "")) for key in _ROUTE_LABELS] for r in routes]
    for key, documentation in _ROUTE_COUNTERS.items():
        family = CounterMetricFamily(f"msq_route_{key}", documentation, labels=_ROUTE_LABELS)
        for route, values in zip(routes, labels, strict=True):
            family.add_metric(values, _number(route.get(key)))
        yield family
    for key, (name, documentation) in _ROUTE_GAUGES.items():
        gauge = GaugeMetricFamily(name, documentation, labels=_ROUTE_LABELS)
        for route, values in zip(routes, labels, strict=True):
            gauge.add_metric(values, _number(route.get(key)))
        yield gauge
    failures = CounterMetricFamily(
        "msq_route_instance_failures",
        "Failed instances by reason",
        labels=[*_ROUTE_LABELS, "kind"],
    )
    batch = HistogramMetricFamily(
        "msq_route_batch_size", "Real instances per completed job", labels=_ROUTE_LABELS
    )
    delay = HistogramMetricFamily(
        "msq_route_queue_delay_seconds",
        "Time instances waited in the broker's queue",
        labels=_ROUTE_LABELS,
    )
    compute = SummaryMetricFamily(
        "msq_route_compute_seconds", "Worker compute time per job", labels=_ROUTE_LABELS
    )
    for route, values in zip(routes, labels, strict=True):
        for kind, count in _mapping(route.get("failures")).items():
            failures.add_metric([*values, str(kind)], _number(count))
        buckets, total = _batch_buckets(_mapping(route.get("job_sizes")))
        batch.add_metric(values, buckets, total)
        queue = _mapping(route.get("queue_delay_ms"))
        delay.add_metric(
            values, _delay_buckets(queue.get("buckets")), _number(queue.get("sum")) / 1e3
        )
        timing = _mapping(route.get("compute_ms"))
        compute.add_metric(
            values, int(_number(timing.get("count"))), _number(timing.get("sum")) / 1e3
        )
    yield from (failures, batch, delay, compute)


def _batch_buckets(job_sizes: Mapping[Any, Any]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative buckets of the job sizes, and the sum of their instances."""
    sizes = {int(size): _number(count) for size, count in job_sizes.items() if str(size).isdigit()}
    buckets = [
        (str(bound), sum(count for size, count in sizes.items() if size <= bound))
        for bound in BATCH_SIZE_BUCKETS
    ]
    buckets.append(("+Inf", sum(sizes.values())))
    return buckets, float(sum(size * count for size, count in sizes.items()))


def _delay_buckets(raw: object) -> list[tuple[str, float]]:
    buckets = []
    for pair in raw if isinstance(raw, list) else []:
        bound, count = _number(pair[0]), _number(pair[1])
        buckets.append(("+Inf" if math.isinf(bound) else repr(bound / 1e3), count))
    if not buckets or buckets[-1][0] != "+Inf":
        buckets.append(("+Inf", buckets[-1][1] if buckets else 0.0))
    return buckets


def _mapping(value: object) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def loop_metrics(
    received: Mapping[str, int], sent: Mapping[str, int], credits: Mapping[tuple[str, int], int]
) -> Iterator[Metric]:
    """The broker loop's own counts: messages per socket, free credits per servable version."""
    for name, counts, documentation in (
        ("msq_broker_messages_received", received, "Messages received, by socket"),
        ("msq_broker_messages_sent", sent, "Messages sent, by socket"),
    ):
        family = CounterMetricFamily(name, documentation, labels=["socket"])
        for socket, count in counts.items():
            family.add_metric([socket], float(count))
        yield family
    free = GaugeMetricFamily(
        "msq_servable_free_credits",
        "Jobs the broker may still send to a servable version's workers now",
        labels=["servable", "version"],
    )
    for (servable, version), count in credits.items():
        free.add_metric([servable, str(version)], float(count))
    yield free
