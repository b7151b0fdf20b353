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

import os
import time

import falcon
import falcon.asgi
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from msq.broker.exposition import broker_metrics
from msq.gateways.rest.http import App, answer_bytes
from msq.gateways.rest.state import Gateway
from msq.metrics import LATENCY_BUCKETS_S, Snapshot
from msq.proto.messages import Status

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
    snapshot = Snapshot()
    snapshot.publish(broker_metrics(status))
    registry.register(snapshot)
    return generate_latest(registry)


def add_routes(app: App, gateway: Gateway, requests: RequestMetrics) -> None:
    """Mount `GET /metrics` on `app`."""
    app.add_route("/metrics", MetricsResource(gateway, requests))
