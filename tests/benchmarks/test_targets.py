"""Plans, batching statistics and target evaluation (pure functions, no servers)."""

from __future__ import annotations

from typing import Any

import pytest

from msq.benchmarks.cli import build_plan, parse_args
from msq.benchmarks.report import targets_table
from msq.benchmarks.runner import RunSpec, batching_summary
from msq.benchmarks.targets import RATIO_TARGETS, evaluate, target_plan


def _run(spec: RunSpec, rps: float, p50: float = 1.0, p99: float = 2.0) -> dict[str, Any]:
    return {
        "scenario": spec.scenario,
        "system": spec.system,
        "path": spec.path,
        "concurrency": spec.concurrency,
        "batch": spec.batch,
        "rate": None,
        "requests_per_s": rps,
        "instances_per_s": rps * spec.batch,
        "mb_per_s": rps * 4.0,
        "latency_ms": {"p50": p50, "p90": p99, "p99": p99, "max": p99},
    }


def test_target_plan_covers_every_ratio() -> None:
    plan = set(target_plan())
    for target in RATIO_TARGETS:
        assert target.numerator.spec() in plan
        assert target.denominator.spec() in plan
    assert len(plan) == len(target_plan())


def test_evaluate_ratios_and_verdicts() -> None:
    runs = [_run(spec, 1000.0) for spec in target_plan()]
    msq_tiny = next(r for r in runs if (r["scenario"], r["system"], r["concurrency"]) ==
                    ("tiny", "msq", 64) and r["path"] == "ms-grpc")  # fmt: skip
    msq_tiny["requests_per_s"] = 1500.0
    rows = {row["id"]: row for row in evaluate(runs, {})}
    assert rows["T1a"]["ratio"] == 1.5
    assert rows["T1a"]["met"] is True
    assert rows["T1b"]["ratio"] == 1.0  # p50 at most 1.5x: met
    assert rows["T1b"]["met"] is True
    assert rows["T2b"]["ratio"] == 1.0  # needs 5x batching gain: missed
    assert rows["T2b"]["met"] is False
    assert rows["T2b"]["detail"] == "requests_per_s: msq 1000 / msq-nobatch 1000"
    assert rows["M-worker"]["met"] is None
    assert rows["M-worker"]["detail"] == "not measured in this run"


def test_evaluate_memory_bounds_per_process() -> None:
    memory = {"mlp": {"msq": {"worker": 512.0, "broker": 90.0, "rest-gateway": 40.0,
                              "rest-gateway/child1": 160.0}}}  # fmt: skip
    rows = {row["id"]: row for row in evaluate([], memory)}
    assert rows["M-worker"]["met"] is True
    assert rows["M-broker"]["met"] is False
    assert rows["M-broker"]["ratio"] == pytest.approx(90 / 80, abs=1e-3)
    assert rows["M-rest-gateway"]["met"] is False  # the worst process counts
    assert rows["T1a"]["met"] is None


def test_batching_summary_is_the_difference_over_a_run() -> None:
    before = {
        "job_sizes": {"1": 10, "4": 2},
        "queue_delay_ms": {"sum": 10.0, "count": 18},
        "compute_ms": {"sum": 6.0, "count": 12},
        "compute_cpu_ms": {"sum": 9.0, "count": 12},
    }
    after = {
        "job_sizes": {"1": 12, "4": 6, "8": 2},
        "queue_delay_ms": {"sum": 40.0, "count": 48},
        "compute_ms": {"sum": 26.0, "count": 20},
        "compute_cpu_ms": {"sum": 39.5, "count": 20},
    }
    summary = batching_summary(before, after)
    assert summary == {
        "jobs": 8,  # 2 of 1, 4 of 4, 2 of 8
        "mean_job_size": 4.25,  # (2 + 16 + 16) / 8
        "queue_delay_ms_mean": 1.0,  # 30 ms over 30 instances
        "compute_ms_mean": 2.5,  # 20 ms over 8 jobs
        "compute_ms_sum": 20.0,
        "compute_cpu_ms_sum": 30.5,
    }


def test_sweep_plan_groups_systems_and_skips_what_large_cannot_measure() -> None:
    args = parse_args(
        ["--scenarios", "large,tiny", "--systems", "bare-rest,msq,direct",
         "--paths", "ms-rest,link", "--concurrency", "1,4", "--plan", "sweep"]
    )  # fmt: skip
    plan = build_plan(args)
    labels = [(s.scenario, s.system, s.path, s.concurrency, s.batch) for s in plan]
    assert labels == [
        ("tiny", "msq", "ms-rest", 1, 1),
        ("tiny", "msq", "ms-rest", 4, 1),
        ("tiny", "msq", "link", 1, 1),
        ("tiny", "msq", "link", 4, 1),
        ("tiny", "bare-rest", "ms-rest", 1, 1),
        ("tiny", "bare-rest", "ms-rest", 4, 1),
        ("tiny", "direct", "inproc", 1, 1),
        ("tiny", "direct", "inproc", 1, 32),
        ("large", "msq", "link", 1, 1),
        ("large", "msq", "link", 4, 1),
    ]


def test_target_plan_is_filtered_by_scenario() -> None:
    plan = build_plan(parse_args(["--scenarios", "large", "--plan", "targets"]))
    assert {(s.system, s.path, s.concurrency) for s in plan} == {
        ("msq", "ms-grpc", 4),
        ("bare-grpc", "ms-grpc", 4),
    }


def test_t2b_over_the_link_and_the_gateway_figure_reported() -> None:
    runs = [_run(spec, 1000.0) for spec in target_plan()]
    for run in runs:
        if (run["scenario"], run["system"], run["concurrency"]) == ("mlp", "msq", 64):
            run["requests_per_s"] = {"link": 6000.0, "ms-grpc": 2500.0}.get(run["path"], 1000.0)
    rows = {row["id"]: row for row in evaluate(runs, {})}
    assert (rows["T2b"]["ratio"], rows["T2b"]["goal"], rows["T2b"]["met"]) == (6.0, ">= 5", True)
    grpc = rows["T2b-grpc"]
    assert (grpc["ratio"], grpc["goal"], grpc["met"]) == (2.5, "-", None)
    table = targets_table(list(rows.values())).splitlines()
    assert next(line for line in table if line.lstrip().startswith("T2b-grpc")).split()[:4] == [
        "T2b-grpc", "2.500", "-", "reported",
    ]  # fmt: skip


def test_issue_13_goals_and_t6_against_both_peers() -> None:
    rows = {row["id"]: row for row in evaluate([], {})}
    assert rows["T1b"]["goal"] == "<= 1.3"
    assert rows["T3"]["goal"] == ">= 0.8"
    for peer, suffix in (("ray", ""), ("litserve", "-litserve")):
        assert rows[f"T6a{suffix}"]["goal"] == ">= 3"
        assert rows[f"T6b{suffix}"]["goal"] == "<= 0.5"
        assert RunSpec("mlp", peer, "ms-rest", 64) in target_plan()
    runs = [_run(spec, 1000.0, p99=10.0) for spec in target_plan()]
    for run in runs:
        if run["system"] == "litserve":
            run["requests_per_s"], run["latency_ms"]["p99"] = 250.0, 40.0
    rows = {row["id"]: row for row in evaluate(runs, {})}
    assert (rows["T6a-litserve"]["ratio"], rows["T6a-litserve"]["met"]) == (4.0, True)
    assert (rows["T6b-litserve"]["ratio"], rows["T6b-litserve"]["met"]) == (0.25, True)
    assert (rows["T6a"]["ratio"], rows["T6a"]["met"]) == (1.0, False)
