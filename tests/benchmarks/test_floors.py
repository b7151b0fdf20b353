"""The floors' measurements run and give sane figures (`msq.benchmarks.floors`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msq.benchmarks.floors import chain, main


def test_the_chain_times_each_round_trip_through_both_processes(tmp_path: Path) -> None:
    times = chain(f"ipc://{tmp_path / 'front'}", f"ipc://{tmp_path / 'back'}", 100)
    assert len(times) == 90  # the first tenth is warm-up
    assert all(0 < seconds < 1.0 for seconds in times)


def test_the_model_floor_prints_each_batch_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "--batch", "4,8", "--seconds", "0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["mlp batch 4", "mlp batch 8"]
    assert all("µs CPU per 32 instances" in line for line in lines)
