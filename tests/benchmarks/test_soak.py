"""`msq.benchmarks.soak`: each process's memory drift and the drift table (pure parts)."""

from __future__ import annotations

import io

from rich.console import Console

from msq.benchmarks.soak import Sample, drift_table, drifts


def test_drift_from_the_first_to_the_last_snapshot_and_the_peak() -> None:
    snapshots = [
        {"broker": Sample(10, 30.0), "worker #1": Sample(11, 200.0)},
        {"broker": Sample(10, 34.0), "worker #1": Sample(11, 260.0), "rest": Sample(12, 50.0)},
        {"broker": Sample(10, 32.5), "worker #1": Sample(13, 190.0), "rest": Sample(12, 51.0)},
    ]
    rows = {row.name: row for row in drifts(snapshots)}
    assert rows["broker"].drift_mb == 2.5
    assert rows["broker"].peak_mb == 34.0
    assert not rows["broker"].restarted
    assert rows["worker #1"].restarted  # a new pid
    assert rows["rest"].start is None
    assert rows["rest"].drift_mb is None
    assert rows["rest"].restarted  # not there at the start
    assert rows["broker"].as_dict() == {
        "name": "broker",
        "pid_start": 10,
        "pid_end": 10,
        "start_mb": 30.0,
        "end_mb": 32.5,
        "peak_mb": 34.0,
        "drift_mb": 2.5,
        "restarted": False,
    }


def test_the_drift_table() -> None:
    rows = drifts([{"broker": Sample(1, 40.0)}, {"broker": Sample(1, 41.0)}])
    buffer = io.StringIO()
    Console(file=buffer, width=120).print(drift_table(rows))
    cells = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in buffer.getvalue().splitlines()
        if "│" in line
    ]
    assert cells == [["broker", "40.0", "41.0", "41.0", "+1.0", "+2.5"]]
