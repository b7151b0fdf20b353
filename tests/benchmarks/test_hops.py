"""T7, cost per hop: the arithmetic from CPU readings and the tables (no processes)."""

from __future__ import annotations

from typing import Any

import pytest

from msq.benchmarks.hops import evaluate_hops, hop_row, hop_seconds
from msq.benchmarks.report import hops_table, markdown
from msq.benchmarks.runner import cpu_used
from msq.benchmarks.targets import HOP_RUNS, RunKey, target_plan


def _run(
    key: RunKey, requests: int, cpu_s: dict[str, float], compute_cpu_ms: float
) -> dict[str, Any]:
    return {
        "scenario": key.scenario,
        "system": key.system,
        "path": key.path,
        "concurrency": key.concurrency,
        "batch": key.batch,
        "rate": None,
        "succeeded": requests,
        "instances": requests * key.batch,
        "cpu_s": cpu_s,
        # the wall time of the executions is not CPU: T7 must not use it
        "batching": {"jobs": 10, "compute_ms_sum": 7777.0, "compute_cpu_ms_sum": compute_cpu_ms},
    }


CPU = {"broker": 0.25, "worker": 1.5, "grpc-gateway": 0.75, "rest-gateway": 0.0625}


def test_cpu_used_is_the_difference_per_process() -> None:
    before = {"broker": 1.0, "worker": 10.0}
    after = {"broker": 1.25, "worker": 12.5, "grpc-gateway": 0.5}
    assert cpu_used(before, after) == {"broker": 0.25, "worker": 2.5, "grpc-gateway": 0.5}


def test_hop_seconds_take_the_gateway_of_the_path_and_subtract_compute() -> None:
    grpc = _run(RunKey("mlp", "msq", "ms-grpc", 8, 32), 100, CPU, compute_cpu_ms=500.0)
    assert hop_seconds(grpc) == {
        "gateway": 0.75,
        "broker": 0.25,
        "worker": 1.5,
        "compute": 0.5,
        "worker_outside": 1.0,
        "total": 2.5,
    }
    rest = _run(RunKey("mlp", "msq", "v2-rest", 1), 100, CPU, compute_cpu_ms=0.0)
    assert hop_seconds(rest)["gateway"] == 0.0625
    link = _run(RunKey("mlp", "msq", "link", 64), 100, CPU, compute_cpu_ms=250.0)
    assert hop_seconds(link)["gateway"] is None
    assert hop_seconds(link)["total"] == 1.75  # broker + worker only


def test_hop_row_per_request_and_per_instance() -> None:
    key = RunKey("mlp", "msq", "ms-grpc", 8, 32)
    row = hop_row(key, _run(key, 1000, CPU, compute_cpu_ms=500.0))
    assert row["requests"] == 1000
    assert row["instances"] == 32000
    assert row["per_request_us"] == {
        "gateway": 750.0,
        "broker": 250.0,
        "worker": 1500.0,
        "compute": 500.0,
        "worker_outside": 1000.0,
        "total": 2500.0,
    }
    assert row["per_instance_us"]["gateway"] == pytest.approx(23.4)  # 750 / 32, one decimal
    assert row["per_instance_us"]["total"] == pytest.approx(78.1)


def test_unmeasured_runs_have_no_row() -> None:
    key = HOP_RUNS[0]
    assert hop_row(key, None)["per_request_us"] is None
    no_cpu = _run(key, 10, CPU, 1.0)
    del no_cpu["cpu_s"]  # a results file from before T7
    assert hop_row(key, no_cpu)["per_request_us"] is None
    assert hop_row(key, _run(key, 0, CPU, 0.0))["per_request_us"] is None  # nothing succeeded
    assert evaluate_hops([no_cpu]) == []


def test_hop_runs_are_in_the_targets_plan_and_evaluated_in_order() -> None:
    plan = set(target_plan())
    assert {key.spec() for key in HOP_RUNS} <= plan
    assert [(k.scenario, k.path, k.concurrency, k.batch) for k in HOP_RUNS] == [
        ("tiny", "ms-grpc", 1, 1),
        ("mlp", "ms-grpc", 64, 1),
        ("mlp", "ms-grpc", 8, 32),
        ("mlp", "link", 64, 1),
    ]
    runs = [_run(key, 100, CPU, 10.0) for key in reversed(HOP_RUNS)]
    runs.append(_run(RunKey("mlp", "msq", "ms-rest", 64), 100, CPU, 10.0))  # not a T7 run
    rows = evaluate_hops(runs)
    assert [(row["scenario"], row["path"], row["batch"]) for row in rows] == [
        ("tiny", "ms-grpc", 1),
        ("mlp", "ms-grpc", 1),
        ("mlp", "ms-grpc", 32),
        ("mlp", "link", 1),
    ]


def test_hops_table_and_markdown() -> None:
    grpc, link = HOP_RUNS[2], HOP_RUNS[3]
    rows = evaluate_hops([_run(grpc, 1000, CPU, 500.0), _run(link, 1000, CPU, 500.0)])
    lines = hops_table(rows).splitlines()
    assert lines[0].split() == [
        "scenario", "path", "c", "batch", "µs", "CPU", "per", "gateway", "broker", "worker",
        "compute", "worker", "-", "compute", "total",
    ]  # fmt: skip
    assert lines[2].split() == [
        "mlp", "ms-grpc", "8", "32", "request", "750.0", "250.0", "1500.0", "500.0", "1000.0",
        "2500.0",
    ]  # fmt: skip
    assert lines[3].split()[4:6] == ["instance", "23.4"]
    assert lines[4].split()[:6] == ["mlp", "link", "64", "1", "request", "-"]
    document = {"runs": [], "targets": [], "memory": {}, "hops": rows}
    parts = markdown(document).split("\n\n")
    assert parts[2].splitlines()[0] == (
        "| scenario | path | c | batch | µs CPU per | gateway | broker | worker | compute "
        "| worker - compute | total |"
    )
    assert parts[2].splitlines()[2] == (
        "| mlp | ms-grpc | 8 | 32 | request | 750.0 | 250.0 | 1500.0 | 500.0 | 1000.0 | 2500.0 |"
    )
    assert len(markdown({**document, "hops": []}).split("\n\n")) == 3
