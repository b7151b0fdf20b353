"""The worker's counters read a job's answer as columns and failed rows."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from msq.proto.codec import to_wire
from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Job, Result, RowFailure
from msq.workers.metrics import WorkerMetrics


def test_instances_and_failures_by_kind_come_from_columns_and_failed_rows() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics("s", 1, "cpu", lambda: 0, registry)
    outputs = stack([{"y": to_wire(np.float32(v))} for v in range(3)])
    failed = [
        RowFailure(1, Failure(ErrorKind.INVALID_INPUT, "bad")),
        RowFailure(3, Failure(ErrorKind.INVALID_INPUT, "bad")),
        RowFailure(4, Failure(ErrorKind.MODEL_ERROR, "broken")),
    ]
    metrics.on_result(Job(1, "m", [], 1000.0), Result(1, outputs, failed, 2.0))

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"method": "m", **labels})

    assert sample("msq_worker_jobs_total") == 1
    assert sample("msq_worker_instances_total") == 6
    assert sample("msq_worker_instance_failures_total", kind="invalid_input") == 2
    assert sample("msq_worker_instance_failures_total", kind="model_error") == 1
    assert sample("msq_worker_compute_seconds_count") == 1
