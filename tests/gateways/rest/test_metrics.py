"""`GET /metrics`: broker statistics as Prometheus families, request counts over all workers."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from msq.gateways.rest.metrics import broker_exposition
from msq.proto.messages import MethodSignature, ServableInfo, Status, TensorSpec
from tests.gateways.rest_stack import RestStack, call

ROUTE = {
    "servable": "add",
    "version": 1,
    "method": "add_common",
    "requests": 5,
    "instances": 9,
    "executions": 4,
    "instances_succeeded": 8,
    "instances_failed": 1,
    "failures": {"model_error": 1},
    "job_sizes": {"1": 2, "3": 1, "4": 1},
    "queue_delay_ms": {"sum": 12.5, "count": 9, "buckets": [[1.0, 5], [10.0, 8], [math.inf, 9]]},
    "compute_ms": {"sum": 40.0, "count": 4},
    "queued": 2,
    "in_flight": 1,
}
STATUS = Status(
    request_id=1,
    servables=[
        ServableInfo("add", 1, (MethodSignature("add_common", (TensorSpec("x1"),), ()),), 3)
    ],
    stats={"uptime_s": 7.5, "rejected": {"queue_full": 4}, "routes": [ROUTE]},
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def exposition(status: Status | None) -> str:
    return broker_exposition(status).decode()


LABELS = (("method", "add_common"), ("servable", "add"), ("version", "1"))


def test_broker_statistics_become_metric_families() -> None:
    found = samples(exposition(STATUS))
    assert found[("msq_broker_up", ())] == 1.0
    assert found[("msq_broker_uptime_seconds", ())] == 7.5
    assert found[("msq_broker_rejected_requests_total", (("kind", "queue_full"),))] == 4
    assert found[("msq_servable_workers", (("servable", "add"), ("version", "1")))] == 3
    for name, value in [
        ("msq_route_requests_total", 5),
        ("msq_route_instances_total", 9),
        ("msq_route_executions_total", 4),
        ("msq_route_instances_succeeded_total", 8),
        ("msq_route_instances_failed_total", 1),
        ("msq_route_queued_instances", 2),
        ("msq_route_in_flight_jobs", 1),
        ("msq_route_compute_seconds_count", 4),
        ("msq_route_compute_seconds_sum", 0.04),
        ("msq_route_batch_size_count", 4),
        ("msq_route_batch_size_sum", 9),
        ("msq_route_queue_delay_seconds_count", 9),
        ("msq_route_queue_delay_seconds_sum", 0.0125),
    ]:
        assert found[(name, LABELS)] == value, name
    assert found[("msq_route_instance_failures_total", (("kind", "model_error"), *LABELS))] == 1
    batch = {
        le: found[("msq_route_batch_size_bucket", (("le", le), *LABELS))]
        for le in ("1", "2", "4", "8", "+Inf")
    }
    assert batch == {"1": 2, "2": 2, "4": 4, "8": 4, "+Inf": 4}
    delay = {
        le: found[("msq_route_queue_delay_seconds_bucket", (("le", le), *LABELS))]
        for le in ("0.001", "0.01", "+Inf")
    }
    assert delay == {"0.001": 5, "0.01": 8, "+Inf": 9}


def test_a_silent_broker_is_reported_down() -> None:
    found = samples(exposition(None))
    assert found == {("msq_broker_up", ()): 0.0}


def live_requests(stack: RestStack) -> float:
    _, headers, body = call(stack.plain(), "GET", "/metrics")
    assert headers["content-type"].startswith("text/plain")
    found = samples(body.decode())
    key = (
        "msq_rest_requests_total",
        (("method", "GET"), ("route", "/v2/health/live"), ("status", "200")),
    )
    assert found[("msq_broker_up", ())] == 1.0
    return found.get(key, 0.0)


def test_request_counts_add_up_over_every_gunicorn_worker(rest_stack: RestStack) -> None:
    before = live_requests(rest_stack)
    for _ in range(20):  # a new connection each: both workers answer some
        assert call(rest_stack.plain(), "GET", "/v2/health/live")[0] == 200
    assert [live_requests(rest_stack) - before for _ in range(6)] == [20.0] * 6
