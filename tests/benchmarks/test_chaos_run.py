"""One short real chaos run: `msq-bench chaos` starts `msq serve` (two `add` workers), loads
every path and SIGKILLs one worker, then SIGSTOPs one for 3 s; every request is counted once
and no answer is wrong."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from msq.benchmarks.tally import STATUSES

PATHS = ["ms-grpc", "ms-rest", "v2-grpc", "v2-rest"]


@pytest.mark.timeout(420)  # msq serve starts MindSpore twice; the run itself takes 20 s
def test_a_worker_kill_and_a_worker_stop(tmp_path: Path) -> None:
    argv = ["msq-bench", "chaos", "--faults", "worker-kill,worker-stop", "--count", "2"]
    argv += ["--first-at", "4", "--interval", "8", "--stop-seconds", "3", "--duration", "20"]
    argv += ["--concurrency", "2", "--out", str(tmp_path)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=400, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    document = json.loads((tmp_path / "chaos.json").read_text())
    windows = {window["name"]: window for window in document["windows"]}
    assert sorted(windows) == ["before faults", "worker-kill", "worker-stop 3 s"]
    for window in document["windows"]:
        assert window["sent"] == sum(window[status] for status in STATUSES)
        assert window["failed"] == sum(window["failures"].values())
        assert sorted(window["by_path"]) == PATHS, window["name"]
        assert window["sent"] == sum(path["sent"] for path in window["by_path"].values())
    totals = document["totals"]
    assert totals["sent"] == sum(window["sent"] for window in document["windows"]) > 0
    for status in STATUSES:
        assert totals[status] == sum(window[status] for window in document["windows"])
    assert windows["worker-kill"]["wrong"] == 0
    assert windows["worker-kill"]["ok"] > 0
    assert totals["wrong"] == 0
    killed = windows["worker-kill"]["target"]
    assert killed in ("worker #1", "worker #2")
    assert windows["worker-stop 3 s"]["target"] in ("worker #1", "worker #2")
    log = (tmp_path / "logs" / "chaos" / "msq-serve.log").read_text()
    assert "exited unexpectedly with code -9" in log
    assert document["meta"]["passed"] is True
