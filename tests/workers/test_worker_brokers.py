"""A worker process serving two brokers (fake ones): it registers with both, answers each job to
the broker that sent it, and registers again with a broker whose heartbeats report another
incarnation (it restarted) while the other broker notices nothing."""

from __future__ import annotations

import time
from pathlib import Path

from msq.proto.columns import stack
from msq.proto.messages import Job, Ready, Result
from tests.processes import worker
from tests.workers.support import decode, encode, f32, rows
from tests.workers.test_worker_process import FakeBroker


def job(job_id: int, value: float) -> Job:
    instance = encode({"x1": f32(2, 2, value=value), "x2": f32(2, 2)})
    return Job(job_id, "add_common", stack([instance]), 6e4)


def test_a_worker_serves_every_broker_and_registers_again_with_a_restarted_one(
    servable_dir: Path,
) -> None:
    first, second = FakeBroker(), FakeBroker()
    proc = worker(f"{first.endpoint},{second.endpoint}", "legacy:1", servable_dir).start()
    try:
        proc.wait_ready()
        assert first.receive(Ready).servable == second.receive(Ready).servable == "legacy"
        for broker, job_id, value in ((first, 1, 1.0), (second, 2, 2.0)):
            broker.send(job(job_id, value))
        for broker, job_id, value in ((first, 1, 1.0), (second, 2, 2.0)):
            result = broker.receive(Result)
            assert result.job_id == job_id
            assert decode(rows(result)[0])["y"].tolist() == [[value, value]] * 2  # type: ignore[index]
        first_peer, second_peer = first.peer, second.peer
        second.incarnation = "restarted"
        started = time.monotonic()
        assert second.receive(Ready, timeout_s=5).servable == "legacy"
        assert time.monotonic() - started < 2.0  # at its next heartbeat (every 0.5 s)
        assert second.peer != second_peer and first.peer == first_peer
        second.send(job(3, 3.0))
        assert second.receive(Result).job_id == 3
        assert all(not isinstance(message, Ready) for message in list(first.inbox.queue))
    finally:
        proc.stop()
        first.close()
        second.close()
