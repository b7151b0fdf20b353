"""A worker's Prometheus metrics: jobs, instances, failures, compute and stage times per method.

Observed from the thread that ran the job (prometheus-client's metrics are thread-safe); jobs
answered unstarted because their deadline passed are read from `JobRunner.expired` at scrape
time. Host memory comes from prometheus-client's process collector
(`process_resident_memory_bytes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from msq.metrics import LATENCY_BUCKETS_S
from msq.proto.columns import count_rows
from msq.proto.messages import Job, Result


class _Expired(Collector):
    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "msq_worker_expired_jobs", "Jobs answered timed out without being computed"
        )
        family.add_metric([], float(self._count()))
        return [family]


class WorkerMetrics:
    """The metrics of one worker process, registered in `registry`."""

    def __init__(
        self,
        servable: str,
        version: int,
        device: str,
        expired: Callable[[], int],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        info = Gauge(
            "msq_worker_info",
            "Always 1: what this worker serves",
            ["servable", "version", "device"],
            registry=registry,
        )
        info.labels(servable, str(version), device).set(1)
        self.jobs = Counter("msq_worker_jobs", "Jobs answered", ["method"], registry=registry)
        self.instances = Counter(
            "msq_worker_instances", "Instances answered", ["method"], registry=registry
        )
        self.failures = Counter(
            "msq_worker_instance_failures",
            "Instances answered with an error, by reason",
            ["method", "kind"],
            registry=registry,
        )
        self.compute = Histogram(
            "msq_worker_compute_seconds",
            "Time to compute a job (all its stages)",
            ["method"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.stage = Histogram(
            "msq_worker_stage_seconds",
            "Time of one stage of a job (Python function or model)",
            ["method", "stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        registry.register(_Expired(expired))

    def on_result(self, job: Job, result: Result) -> None:
        """Count a job's answer."""
        self.jobs.labels(job.method).inc()
        self.instances.labels(job.method).inc(count_rows(result.columns) + len(result.failures))
        for failed in result.failures:
            self.failures.labels(job.method, failed.failure.kind.value).inc()
        if result.compute_ms > 0:
            self.compute.labels(job.method).observe(result.compute_ms / 1000.0)

    def on_stage(self, method: str, stage: str, seconds: float) -> None:
        """Time one stage of a job of `method`."""
        self.stage.labels(method, stage).observe(seconds)
