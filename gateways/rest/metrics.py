"""`GET /metrics`: the REST gateway's request metrics and the broker's batching statistics.

Request metrics (`msq_rest_requests_total{route,method,status}` and the latency histogram
`msq_rest_request_duration_seconds{route,method}`) are counted by each gunicorn worker
process. When `PROMETHEUS_MULTIPROC_DIR` is set (the gunicorn config module sets a private
temporary directory unless you give one), every worker writes them there and any worker's
`/metrics` reports the sum over all workers (prometheus-client's multiprocess mode); without
it, each process reports only its own requests.

Broker statistics are the broker's `Status.stats`, fetched fresh at every scrape, so they are
the same whichever worker answers: per (servable, version, method) route the accepted
requests and instances, executions (jobs; instances / executions is the mean batch size),
succeeded and failed instances by reason, the job-size and queue-delay histograms, compute
time, and what is queued or running now; plus `msq_broker_up`, uptime, rejected requests
and workers per servable.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import falcon
import falcon.asgi
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from msq.gateways.rest.http import App, answer_bytes
from msq.gateways.rest.state import Gateway
from msq.proto.messages import Status

#: Latency buckets (seconds) of the gateway's request histogram.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
#: Upper bounds of the job-size histogram's buckets (instances per job).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_ROUTE_LABELS = ("servable", "version", "method")
_UNMATCHED = "unmatched"
#: Methods counted by name; any other is counted as "other" (label values stay bounded).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


class RequestMetrics:
    """Falcon middleware counting requests and timing them by route template and status."""

    def __init__(self) -> None:
        self.requests = Counter(
            "msq_rest_requests",
            "HTTP requests answered by the REST gateway",
            ("route", "method", "status"),
            registry=None,
        )
        self.latency = Histogram(
            "msq_rest_request_duration_seconds",
            "Time to answer an HTTP request, from routing to the response",
            ("route", "method"),
            buckets=LATENCY_BUCKETS_S,
            registry=None,
        )

    def registry(self) -> CollectorRegistry:
        """The registry to expose: all workers' files in multiprocess mode, else this one's."""
        registry = CollectorRegistry(auto_describe=True)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry.register(self.requests)
            registry.register(self.latency)
        return registry

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.msq_started = time.perf_counter()

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        started = getattr(req.context, "msq_started", None)
        route = req.uri_template or _UNMATCHED
        method = req.method if req.method in _METHODS else "other"
        self.requests.labels(route, method, str(resp.status_code)).inc()
        if started is not None:
            self.latency.labels(route, method).observe(time.perf_counter() - started)


class _Snapshot(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


class MetricsResource:
    """Answers `GET /metrics` in the Prometheus text format."""

    def __init__(self, gateway: Gateway, requests: RequestMetrics) -> None:
        self._gateway = gateway
        self._registry = requests.registry()

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        status = await self._gateway.catalog.status(max_age_s=0.0)
        body = generate_latest(self._registry) + broker_exposition(status)
        answer_bytes(resp, 200, body, "text/plain; version=0.0.4; charset=utf-8")


def broker_exposition(status: Status | None) -> bytes:
    """The broker's statistics in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(list(broker_metrics(status))))
    return generate_latest(registry)


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


def add_routes(app: App, gateway: Gateway, requests: RequestMetrics) -> None:
    """Mount `GET /metrics` on `app`."""
    app.add_route("/metrics", MetricsResource(gateway, requests))
