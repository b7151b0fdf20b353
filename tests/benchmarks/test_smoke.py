"""A bounded smoke run of `msq-bench` against real msq processes: the results file's structure
and non-zero throughput (no timing assertions)."""

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
        "--paths", ",".join(PATHS), "--concurrency", "2", "--plan", "sweep",
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
            assert 1.0 <= batching["mean_job_size"] <= 2.0, run["path"]  # 2 in flight


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
    targets = {row["id"]: row for row in document["targets"]}
    assert {"T1a", "T1b", "T2a", "T2b", "T3", "T4", "T5", "T6a", "T6b", "M-worker"} <= set(targets)
    assert targets["T1a"]["met"] is None  # the sweep did not run the bare server
    assert (out / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_tables_of_the_results(results: tuple[dict[str, Any], Path]) -> None:
    _, out = results
    command = ["msq-bench", "--markdown", str(out / "results.json")]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    runs, targets, memory = finished.stdout.split("\n\n")
    assert runs.startswith("| scenario | system | path | c | batch | req/s |")
    assert sum(line.startswith("| tiny | msq | ") for line in runs.splitlines()) == len(PATHS)
    assert targets.splitlines()[2].startswith("| T1a | ")
    assert "| tiny | msq | broker |" in memory
