"""The worker of the 2-rank `tp_mlp` example (real rank processes) against a fake broker: jobs
of stacked and one-row columns give the unsharded model's answers, a bad block fails alone."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from msq.proto.codec import from_wire, to_wire
from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Job, Ready, Result
from tests.integration.distributed_support import inputs, reference
from tests.processes import worker
from tests.workers.support import rows
from tests.workers.test_worker_process import FakeBroker, Served

#: float32 sums in another order (two partial sums added by AllReduce).
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def tp_mlp() -> Iterator[Served]:
    broker = FakeBroker()
    proc = worker(broker.endpoint, "tp_mlp")
    try:
        proc.start()
        proc.wait_ready()
        yield Served(broker, proc, broker.receive(Ready, timeout_s=5))
    finally:
        proc.stop()
        broker.close()


def run_job(served: Served, job: Job) -> Result:
    served.broker.send(job)
    result = served.broker.receive(Result, timeout_s=60)
    assert result.job_id == job.job_id
    return result


@pytest.mark.parametrize("count", [1, 5, 16, 21])
def test_stacked_and_one_row_jobs_equal_the_unsharded_model(tp_mlp: Served, count: int) -> None:
    x = inputs(count, seed=count)
    instances = [{"x": to_wire(row)} for row in x]
    stacked = run_job(tp_mlp, Job(count, "predict", stack(instances), 60_000.0))
    assert stacked.failures == []
    assert len(stacked.columns) == (1 if count <= 16 else 2)  # the largest size is 16
    got = np.concatenate([from_wire(part.tensors["y"]) for part in stacked.columns])
    np.testing.assert_allclose(got, reference(x), **TOLERANCE)
    alone = [part for instance in instances for part in stack([instance])]
    one_row = run_job(tp_mlp, Job(100 + count, "predict", alone, 60_000.0))
    assert [from_wire(o["y"]).tolist() for o in rows(one_row)] == got.tolist()  # type: ignore[index]


def test_a_bad_block_fails_alone(tp_mlp: Served) -> None:
    x = inputs(4, seed=1)
    bad = [{"x": to_wire(np.zeros(32, np.float32))} for _ in range(2)]
    parts = [*stack([{"x": to_wire(row)} for row in x[:2]]), *stack(bad)]
    parts += stack([{"x": to_wire(row)} for row in x[2:]])
    result = run_job(tp_mlp, Job(7, "predict", parts, 60_000.0))
    outcomes = rows(result)
    failure = Failure(
        ErrorKind.INVALID_INPUT,
        "Given model input 0 size 128 not match the size 256 defined in model distributed(2 ranks)",
    )
    assert outcomes[2:4] == [failure, failure]
    got = [from_wire(outcomes[k]["y"]) for k in (0, 1, 4, 5)]  # type: ignore[index]
    np.testing.assert_allclose(np.stack(got), reference(x), **TOLERANCE)
