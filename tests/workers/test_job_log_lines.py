"""Every line a worker logs about a job names the job's request ids."""

from __future__ import annotations

import json

import pytest

from msq.process import setup_logging
from msq.proto.columns import stack
from msq.proto.messages import Job, Result
from msq.workers.loop import JobRunner
from tests.workers.support import encode, f32


def job(timeout_ms: float = 1000.0) -> Job:
    return Job(4, "affine", stack([encode({"x": f32(3, value=1)})]), timeout_ms, ["r-1", "r-2"])


def logged(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str, object]]:
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    return [(line["level"], line["message"], line.get("request_ids")) for line in lines]


def test_start_failure_and_expiry_lines_name_the_requests(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("msq-worker", "DEBUG", "json")

    def broken(job: Job) -> Result:
        raise RuntimeError("bug")

    runner = JobRunner(broken, clock=lambda: 10.0)
    runner.run(job(), runner.received(job()))
    expired = job(timeout_ms=0.0)
    JobRunner(broken, clock=lambda: 10.0).run(expired, runner.received(expired))
    (started, failed, late) = logged(capsys)
    assert started == ("DEBUG", "job 4: method affine, 1 instances", ["r-1", "r-2"])
    assert failed == ("ERROR", "job 4 of method affine failed", ["r-1", "r-2"])
    assert late[0] == "INFO" and late[1].startswith("job 4 not computed: request timed out")
    assert late[2] == ["r-1", "r-2"]
