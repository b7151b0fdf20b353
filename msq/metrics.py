"""Prometheus exposition shared by msq's programs: one `--metrics-port`/`--metrics-host` pair,
one way to start the `/metrics` HTTP server, and a collector that serves a published snapshot.

Every program serves `/metrics` from prometheus-client's own server thread, off by default,
on 127.0.0.1 unless `--metrics-host` says otherwise. Metric names are listed in docs/metrics.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, disable_created_metrics, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import REGISTRY, Collector

DEFAULT_METRICS_HOST = "127.0.0.1"
#: Latency buckets (seconds) of the gateways' request histograms.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    """Add `--metrics-port` (default off; 0 picks a free port) and `--metrics-host`."""
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off; 0: any port)",
    )
    parser.add_argument(
        "--metrics-host",
        default=DEFAULT_METRICS_HOST,
        help="address the metrics server binds (default %(default)s)",
    )


def start_exporter(args: argparse.Namespace, registry: CollectorRegistry = REGISTRY) -> str | None:
    """Serve `registry` if `--metrics-port` was given: the scrape address "HOST:PORT", else None."""
    if args.metrics_port is None:
        return None
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series
    server, _thread = start_http_server(args.metrics_port, args.metrics_host, registry)
    return f"{args.metrics_host}:{server.server_port}"


def ready_detail(detail: str, address: str | None) -> str:
    """A ready line's detail, naming the metrics address when there is one."""
    return detail if address is None else f"{detail}, metrics http://{address}/metrics"


class Snapshot(Collector):
    """Serves the metric families last published; `publish` swaps them in one assignment, so
    the server thread never sees a half-built list and never reads the publisher's data."""

    def __init__(self) -> None:
        self._metrics: list[Metric] = []

    def publish(self, metrics: Iterable[Metric]) -> None:
        """Replace the served families (call from the thread that owns the source data)."""
        self._metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self._metrics
