"""Every process's `/metrics` after known traffic: it parses, and its counters equal the traffic.

One small stack of its own (broker, `add` worker, gRPC gateway), each with a metrics port.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from msq.client import Client
from msq.gateways.rest.metrics import RequestMetrics
from tests.gateways.grpc_processes import gateway
from tests.processes import (
    EXAMPLES,
    broker,
    endpoint,
    free_port,
    start_served,
    stop_all,
    worker,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
REQUESTS, INSTANCES = 5, 3
PREDICT = "/mindspore.serving.proto.MSService/Predict"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of `http://127.0.0.1:port/metrics`, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def eventually(port: int, check: Callable[[Samples], bool], timeout_s: float = 5.0) -> Samples:
    """The first scrape that passes `check` (the broker publishes twice a second)."""
    deadline = time.monotonic() + timeout_s
    while not check(samples := scrape(port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return samples


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, int]]:
    frontend, backend = endpoint(), endpoint()
    ports = {"broker": free_port(), "worker": free_port(), "grpc": free_port()}
    gateway_proc, address = gateway(frontend, "--metrics-port", str(ports["grpc"]))
    procs = start_served(
        [
            broker(frontend, backend, "--metrics-port", str(ports["broker"])),
            worker(backend, "add", EXAMPLES, "--metrics-port", str(ports["worker"])),
            gateway_proc,
        ],
        frontend,
        {"add": 1},
    )
    try:
        x = np.ones((2, 2), np.float32)
        with Client(address, "add", "add_common") as client:
            for _ in range(REQUESTS):
                results = client.infer([{"x1": x, "x2": x}] * INSTANCES)
                assert all("y" in result for result in results), results
        with pytest.raises(InferenceServerException, match="nope"):
            triton_grpc.InferenceServerClient(address).get_model_metadata("nope")
        yield ports
    finally:
        stop_all(procs)


def test_broker_counts_the_requests_and_instances_it_accepted(stack: dict[str, int]) -> None:
    route = {"servable": "add", "version": "1", "method": "add_common"}
    samples = eventually(
        stack["broker"],
        lambda s: value(s, "msq_route_instances_succeeded_total", **route) == 15,
    )
    assert value(samples, "msq_route_requests_total", **route) == REQUESTS
    assert value(samples, "msq_route_instances_total", **route) == REQUESTS * INSTANCES
    assert value(samples, "msq_route_instances_succeeded_total", **route) == REQUESTS * INSTANCES
    assert value(samples, "msq_route_instances_failed_total", **route) == 0
    assert value(samples, "msq_route_batch_size_sum", **route) == REQUESTS * INSTANCES
    assert value(samples, "msq_route_queue_delay_seconds_count", **route) == REQUESTS * INSTANCES
    assert value(samples, "msq_route_queued_instances", **route) == 0
    assert value(samples, "msq_servable_workers", servable="add", version="1") == 1
    assert value(samples, "msq_servable_free_credits", servable="add", version="1") == 2
    # every request came in on the frontend; every reply and job went out
    assert value(samples, "msq_broker_messages_received_total", socket="frontend") >= REQUESTS
    assert value(samples, "msq_broker_messages_sent_total", socket="backend") >= 1
    assert value(samples, "process_resident_memory_bytes") > 0


def test_worker_counts_the_jobs_and_instances_it_computed(stack: dict[str, int]) -> None:
    broker_samples = scrape(stack["broker"])
    route = {"servable": "add", "version": "1", "method": "add_common"}
    samples = scrape(stack["worker"])
    jobs = value(samples, "msq_worker_jobs_total", method="add_common")
    assert jobs == value(broker_samples, "msq_route_executions_total", **route)
    assert 1 <= jobs <= REQUESTS
    assert value(samples, "msq_worker_instances_total", method="add_common") == 15
    assert value(samples, "msq_worker_compute_seconds_count", method="add_common") == jobs
    stage = {"method": "add_common", "stage": "1:model tensor_add.mindir"}
    assert value(samples, "msq_worker_stage_seconds_count", **stage) == jobs
    assert value(samples, "msq_worker_expired_jobs_total") == 0
    assert value(samples, "msq_worker_info", servable="add", version="1", device="cpu") == 1
    assert value(samples, "process_resident_memory_bytes") > 0


def test_grpc_gateway_counts_each_call_by_method_and_code(stack: dict[str, int]) -> None:
    samples = scrape(stack["grpc"])
    assert value(samples, "msq_grpc_requests_total", method=PREDICT, code="OK") == REQUESTS
    assert value(samples, "msq_grpc_request_duration_seconds_count", method=PREDICT) == REQUESTS
    metadata = "/inference.GRPCInferenceService/ModelMetadata"
    assert value(samples, "msq_grpc_requests_total", method=metadata, code="NOT_FOUND") == 1
    assert value(samples, "msq_grpc_requests_total", method=metadata, code="OK") == 0
    assert {name for name, _ in samples if name.startswith("msq_grpc_requests")} == {
        "msq_grpc_requests_total"  # no `_created` series
    }


SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


def series_names(families: Iterable[Metric]) -> set[str]:
    """The series names these families declare, whether or not they have samples yet."""
    return {
        family.name + suffix for family in families for suffix in SUFFIXES.get(family.type, ("",))
    }


def exported(stack: dict[str, int]) -> set[str]:
    """Every series name the stack's processes and the REST gateway's request metrics declare."""
    names = set()
    for port in stack.values():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            names |= series_names(text_string_to_metric_families(reply.read().decode()))
    return names | series_names(RequestMetrics().registry().collect())


def queried(dashboard: object) -> set[str]:
    """The metric names in every PromQL expression of a Grafana dashboard."""
    assert isinstance(dashboard, dict)
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert expressions
    return {
        name
        for expression in expressions
        for name in re.findall(r"\b((?:msq|process)_[a-z0-9_]+)\b", expression)
    }


def test_queried_finds_every_metric_name_in_an_expression() -> None:
    dashboard = {"panels": [{"targets": [
        {"expr": "histogram_quantile(0.5, sum by (le) (rate(msq_a_bucket[5m])))"},
        {"expr": "msq_b / process_c{kind=\"worker\"}"},
    ]}]}  # fmt: skip
    assert queried(dashboard) == {"msq_a_bucket", "msq_b", "process_c"}


def test_every_metric_the_dashboard_queries_is_exported(stack: dict[str, int]) -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    names = queried(dashboard)
    assert len(names) >= 10
    assert names - exported(stack) == set()


def test_every_exported_metric_is_in_the_metrics_table(stack: dict[str, int]) -> None:
    table = set(re.findall(r"^\| `(msq_[a-z0-9_]+)`", (DOCS / "metrics.md").read_text(), re.M))
    families = set()
    for name in exported(stack):
        if name.startswith("msq_"):
            bare = re.sub(r"_(bucket|sum|count)$", "", name)
            families.add(bare if bare in table else name)
    assert families == table
