"""A bounded smoke run of `msq-bench` against real msq processes: the results file's structure,
non-zero throughput and CPU per hop (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

PATHS = ("ms-grpc", "v2-grpc", "ms-rest", "v2-rest", "link")
RUN_KEYS = {
    "scenario", "system", "path", "concurrency", "batch", "rate", "mode", "elapsed_s",
    "requests", "succeeded", "instances", "requests_per_s", "instances_per_s", "mb_per_s",
    "errors", "latency_ms",
}  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    command = [
        "msq-bench", "--scenarios", "tiny", "--systems", "msq,direct",
        "--paths", ",".join(PATHS), "--concurrency", "1", "--plan", "sweep",
        "--duration", "0.5", "--warmup", "0.2", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "results:" in finished.stdout
    return json.loads((out / "results.json").read_text()), out


def test_every_path_and_the_direct_floor_ran(results: tuple[dict[str, Any], Path]) -> None:
    document, _ = results
    ran = {(run["system"], run["path"], run["batch"]) for run in document["runs"]}
    expected = {("msq", path, 1) for path in PATHS}
    expected |= {("direct", "inproc", 1), ("direct", "inproc", 32)}
    assert ran == expected
    assert document["skipped"] == []
    assert document["failures"] == []


def test_runs_have_throughput_latency_and_no_errors(results: tuple[dict[str, Any], Path]) -> None:
    document, _ = results
    for run in document["runs"]:
        assert set(run) >= RUN_KEYS, run
        label = f"{run['system']} {run['path']}"
        assert run["errors"] == {}, label
        assert run["succeeded"] == run["requests"] > 0, label
        assert run["instances"] == run["succeeded"] * run["batch"], label
        assert run["requests_per_s"] > 0, label
        latency = run["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"], label


def test_msq_runs_report_broker_batching(results: tuple[dict[str, Any], Path]) -> None:
    document, _ = results
    for run in document["runs"]:
        if run["system"] == "msq":
            batching = run["batching"]
            assert batching["jobs"] > 0, run["path"]
            assert batching["mean_job_size"] == 1.0, run["path"]  # 1 in flight
            assert batching["compute_ms_sum"] > 0, run["path"]


def test_memory_of_every_msq_process(results: tuple[dict[str, Any], Path]) -> None:
    document, _ = results
    sizes = document["memory"]["tiny"]["msq"]
    for process in ("broker", "worker", "grpc-gateway", "rest-gateway"):
        assert sizes[process] > 0, process
    assert len([label for label in sizes if label.startswith("rest-gateway/")]) == 2


def test_meta_targets_and_plot(results: tuple[dict[str, Any], Path]) -> None:
    document, out = results
    assert document["meta"]["machine"]["cpus"] >= 1
    assert document["meta"]["command"][0] == "msq-bench"
    assert set(document["meta"]["load_average"]) == {"start", "end"}
    assert len(document["meta"]["load_average"]["end"]) == 3
    targets = {row["id"]: row for row in document["targets"]}
    assert {"T1a", "T1b", "T2a", "T2b", "T2b-grpc", "T3", "T4", "T5", "T6a", "T6b",
            "T6a-litserve", "T6b-litserve", "M-worker"} <= set(targets)  # fmt: skip
    assert targets["T1a"]["met"] is None  # the sweep did not run the bare server
    assert (out / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cpu_of_every_msq_process_and_t7(results: tuple[dict[str, Any], Path]) -> None:
    document, _ = results
    for run in document["runs"]:
        if run["system"] == "msq":
            cpu = run["cpu_s"]
            assert set(cpu) == {"broker", "worker", "grpc-gateway", "rest-gateway"}, run["path"]
            assert cpu["broker"] > 0, run["path"]
            assert cpu["worker"] > 0, run["path"]
    # T7's one run in this sweep: tiny over ms-grpc at 1 in flight
    (row,) = document["hops"]
    assert (row["scenario"], row["path"], row["concurrency"], row["batch"]) == (
        "tiny", "ms-grpc", 1, 1,
    )  # fmt: skip
    run = next(r for r in document["runs"] if r["system"] == "msq" and r["path"] == "ms-grpc")
    assert (row["requests"], row["instances"]) == (run["succeeded"], run["instances"])
    cost = row["per_request_us"]
    assert cost["gateway"] == round(run["cpu_s"]["grpc-gateway"] / run["succeeded"] * 1e6, 1)
    assert cost["gateway"] > 0
    hops = cost["gateway"] + cost["broker"] + cost["worker"]
    assert cost["total"] == pytest.approx(hops, abs=0.2)
    assert row["per_instance_us"] == cost  # one instance per request


def test_markdown_tables_of_the_results(results: tuple[dict[str, Any], Path]) -> None:
    _, out = results
    command = ["msq-bench", "--markdown", str(out / "results.json")]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    runs, targets, hops, memory = finished.stdout.split("\n\n")
    assert runs.startswith("| scenario | system | path | c | batch | req/s |")
    assert sum(line.startswith("| tiny | msq | ") for line in runs.splitlines()) == len(PATHS)
    assert targets.splitlines()[2].startswith("| T1a | ")
    assert hops.splitlines()[2].startswith("| tiny | ms-grpc | 1 | 1 | request | ")
    assert hops.splitlines()[3].startswith("| tiny | ms-grpc | 1 | 1 | instance | ")
    assert "| tiny | msq | broker |" in memory
