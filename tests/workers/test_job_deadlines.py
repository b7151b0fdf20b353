"""A worker answers a job whose deadline passed before it started as timed out, uncomputed."""

from __future__ import annotations

import os

import pytest

from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Job, Result, RowFailure
from msq.workers.loop import JobRunner
from msq.workers.servable import LoadedServable
from tests.workers.support import decode, encode, f32, rows


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def calls() -> list[Job]:
    return []


@pytest.fixture
def runner(pipes: LoadedServable, calls: list[Job]) -> tuple[JobRunner, Clock]:
    """A runner of the real `pipes` servable that records the jobs it computes."""

    def execute(job: Job) -> Result:
        calls.append(job)
        return pipes.execute(job)

    clock = Clock()
    return JobRunner(execute, clock), clock


def affine_job(timeout_ms: float) -> Job:
    instances = [encode({"x": f32(3, value=1)}), encode({"x": f32(3, value=2)})]
    return Job(1, "affine", stack(instances), timeout_ms)


def test_a_job_started_in_time_is_computed(
    runner: tuple[JobRunner, Clock], calls: list[Job]
) -> None:
    jobs, clock = runner
    job = affine_job(50.0)
    deadline = jobs.received(job)
    clock.now += 0.049
    result = jobs.run(job, deadline)
    assert calls == [job]
    assert [decode(o)["y"].tolist() for o in rows(result)] == [[3.0] * 3, [5.0] * 3]  # type: ignore[index]
    assert jobs.expired == 0


def test_a_job_whose_deadline_passed_while_it_waited_is_not_computed(
    runner: tuple[JobRunner, Clock], calls: list[Job]
) -> None:
    jobs, clock = runner
    job = affine_job(50.0)
    deadline = jobs.received(job)
    clock.now += 0.075
    result = jobs.run(job, deadline)
    assert calls == []
    failure = Failure(
        ErrorKind.TIMEOUT,
        f"request timed out: its deadline passed 25 ms ago before worker {os.getpid()} "
        "started method 'affine'",
    )
    assert result == Result(1, [], [RowFailure(0, failure), RowFailure(1, failure)], 0.0)
    assert jobs.expired == 1


def test_a_job_sent_with_no_time_left_is_not_computed(
    runner: tuple[JobRunner, Clock], calls: list[Job]
) -> None:
    jobs, _ = runner
    job = affine_job(0.0)
    result = jobs.run(job, jobs.received(job))
    assert calls == []
    assert [o.kind for o in rows(result)] == [ErrorKind.TIMEOUT] * 2  # type: ignore[union-attr]
    assert jobs.expired == 1


def test_an_exception_fails_the_job_instances_and_the_worker_goes_on() -> None:
    def broken(job: Job) -> Result:
        raise RuntimeError("bug")

    jobs = JobRunner(broken)
    job = affine_job(1000.0)
    result = jobs.run(job, jobs.received(job))
    failure = Failure(ErrorKind.INTERNAL, f"worker {os.getpid()} failed the job: bug")
    assert rows(result) == [failure, failure]
    assert jobs.expired == 0
