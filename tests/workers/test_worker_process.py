"""The real `msq-worker` process against a ROUTER standing in for the broker."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgpack
import numpy as np
import pytest
import zmq

from msq.proto import transport
from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    PROTOCOL_VERSION,
    BatchPolicy,
    Disconnect,
    Drain,
    Heartbeat,
    Job,
    Message,
    MethodSignature,
    Ready,
    Result,
    TensorSpec,
)
from tests.processes import Proc, worker
from tests.workers.support import decode, encode, f32, rows

MessageT = TypeVar("MessageT", bound=Message)


class FakeBroker:
    """A ROUTER standing in for msq-broker, run by its own thread: it queues what workers
    send, heartbeats the last registered worker every 0.5 s (unless `heartbeating` is off) with
    its `incarnation`, and answers an unknown worker with `Disconnect`, as msq-broker does."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:*") -> None:
        self.context: zmq.Context = zmq.Context()
        self.sock = transport.router(self.context, endpoint)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.peer: bytes | None = None
        self.heartbeating = True
        self.incarnation = "fake"
        self.last_sent = 0.0
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.outbox: queue.Queue[list[bytes]] = queue.Queue()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            if self.heartbeating and self.peer and time.monotonic() - self.last_sent > 0.5:
                self.outbox.put(transport.frames_of(Heartbeat(self.incarnation)))
            while not self.outbox.empty():
                frames = self.outbox.get()
                try:
                    self.sock.send_multipart([self.peer or b"", *frames], copy=False)
                except zmq.ZMQError:  # EHOSTUNREACH: the worker is gone
                    self.peer = None
                self.last_sent = time.monotonic()
            while self.sock.poll(20):
                peer, *frames = self.sock.recv_multipart(copy=False)
                message = transport.message_of(frames)
                if isinstance(message, Ready):
                    self.peer = peer.bytes
                elif peer.bytes != self.peer:
                    goodbye = Disconnect("unknown worker")
                    self.sock.send_multipart(transport.frames_of(goodbye, peer=peer.bytes))
                    continue
                self.inbox.put(message)
                if isinstance(message, Disconnect):
                    self.peer = None
        self.sock.close(linger=0)
        self.context.term()

    def receive(self, kind: type[MessageT], timeout_s: float = 10.0) -> MessageT:
        """The next message of `kind` from the worker (heartbeats and Ready skipped)."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(message, kind):
                return message
            if not isinstance(message, (Heartbeat, Ready)):
                raise AssertionError(f"unexpected {message!r}")
        raise AssertionError(f"no {kind.__name__} within {timeout_s} s")

    def send(self, message: Message) -> None:
        """Send to the worker registered last."""
        self.send_frames(transport.frames_of(message))

    def send_frames(self, frames: list) -> None:
        self.outbox.put(frames)

    def close(self) -> None:
        self.running = False
        self.thread.join()


@dataclass
class Served:
    """A worker process registered with a fake broker."""

    broker: FakeBroker
    proc: Proc
    ready: Ready


@pytest.fixture(scope="module")
def workers(servable_dir: Path) -> Iterator[dict[str, Served]]:
    """`pipes` and `legacy` workers, started in parallel, each with its own fake broker."""
    brokers = {"pipes": FakeBroker(), "legacy": FakeBroker()}
    procs = {
        "pipes": worker(brokers["pipes"].endpoint, "pipes", servable_dir, "--capacity", "3"),
        "legacy": worker(brokers["legacy"].endpoint, "legacy:1", servable_dir),
    }
    served: dict[str, Served] = {}
    try:
        for proc in procs.values():
            proc.start()
        for name, proc in procs.items():
            proc.wait_ready()
            served[name] = Served(brokers[name], proc, brokers[name].receive(Ready, timeout_s=5))
        yield served
    finally:
        for proc in procs.values():
            proc.stop()
        for broker in [*brokers.values(), *(s.broker for s in served.values())]:
            broker.close()


def test_ready_announces_the_servable(workers: dict[str, Served]) -> None:
    ready = workers["pipes"].ready
    assert (ready.servable, ready.version, ready.capacity, ready.device) == ("pipes", 1, 3, "cpu")
    assert ready.pid == workers["pipes"].proc.pid
    methods = {method.name: method for method in ready.methods}
    assert len(methods) == 16
    assert methods["add_common"] == MethodSignature(
        "add_common",
        (TensorSpec("x1", "float32", (2, 2)), TensorSpec("x2", "float32", (2, 2))),
        (TensorSpec("y", "float32", (2, 2)),),
        BatchPolicy((1, 2, 4, 8), 8, 1.5, 10000),
    )
    assert methods["affine"].batching.sizes == (4,)
    legacy = workers["legacy"].ready
    assert (legacy.servable, legacy.version, legacy.capacity) == ("legacy", 1, 2)
    assert "msq-worker ready: pipes v1 on cpu" in workers["pipes"].proc.log()


def run_job(served: Served, job: Job) -> Result:
    served.broker.send(job)
    result = served.broker.receive(Result, timeout_s=10)
    assert result.job_id == job.job_id
    return result


def test_jobs_give_exact_results(workers: dict[str, Served]) -> None:
    pipes = workers["pipes"]
    instances = [encode({"x1": f32(2, 2, value=i), "x2": f32(2, 2, value=10)}) for i in range(3)]
    result = run_job(pipes, Job(1, "add_common", stack(instances), 60_000.0))
    assert [decode(o)["y"].tolist() for o in rows(result)] == [  # type: ignore[index]
        [[10.0 + i] * 2] * 2 for i in range(3)
    ]
    assert result.compute_ms > 0 and result.compute_cpu_ms > 0
    mixed = [encode({"x1": f32(2, 2, value=v), "x2": f32(2, 2)}) for v in (1, -1)]
    result = run_job(pipes, Job(2, "checked", stack([*mixed, {"x1": mixed[0]["x1"]}]), 60_000.0))
    assert rows(result)[1] == Failure(
        ErrorKind.MODEL_ERROR,
        "method 'checked' stage 1 (function reject_negative) failed: ValueError: negative input",
    )
    assert rows(result)[2] == Failure(
        ErrorKind.INVALID_INPUT, "Cannot find input x2 in instance input"
    )
    missing = run_job(pipes, Job(3, "absent", stack(instances[:1]), 60_000.0))
    assert rows(missing) == [Failure(ErrorKind.NOT_FOUND, "method is not available: absent")]


def test_a_wrong_shape_from_a_python_stage_fails_in_the_worker(
    workers: dict[str, Served],
) -> None:
    x = encode({"x1": f32(2, 2), "x2": f32(2, 2)})
    result = run_job(workers["pipes"], Job(8, "flattened", stack([x]), 60_000.0))
    assert rows(result) == [
        Failure(
            ErrorKind.INVALID_INPUT,
            "Given model input 0 shape [4] not match the shape [2, 2] defined in model "
            "add_dyn.mindir",
        )
    ]


def test_large_tensors_travel_in_their_own_frames(workers: dict[str, Served]) -> None:
    big = np.arange(100_000, dtype=np.float32)
    result = run_job(
        workers["pipes"], Job(4, "batch_all", stack([encode({"x": big})] * 2), 60_000.0)
    )
    for outcome in rows(result):
        values = decode(outcome)
        assert isinstance(values, dict)
        assert int(values["seen"]) == 2
        np.testing.assert_array_equal(values["x"], big)


def test_malformed_messages_are_dropped(workers: dict[str, Served]) -> None:
    pipes = workers["pipes"]
    for frames in (
        [b"\xc1 not msgpack"],
        [msgpack.packb([PROTOCOL_VERSION, "what"])],
        [msgpack.packb([PROTOCOL_VERSION, "Job", 9])],
        [msgpack.packb([99, "Heartbeat"])],
        [msgpack.packb({"v": 1, "c": "hb"})],
    ):
        pipes.broker.send_frames(frames)
    result = run_job(pipes, Job(5, "affine", stack([encode({"x": f32(3, value=1)})]), 60_000.0))
    assert decode(rows(result)[0])["y"].tolist() == [3.0, 3.0, 3.0]  # type: ignore[index]
    assert pipes.proc.process.poll() is None
    log = pipes.proc.log()
    assert "dropped a malformed message from the broker: message header is not valid" in log
    assert "unknown command 'what'" in log
    assert "protocol version 99 is not supported" in log
    assert "message header is not an array" in log  # a peer of protocol version 1


def test_a_job_past_its_deadline_is_answered_timed_out_without_computing(
    workers: dict[str, Served],
) -> None:
    pipes = workers["pipes"]
    result = run_job(pipes, Job(8, "affine", stack([encode({"x": f32(3)})] * 2), 0.0))
    prefix = "request timed out: its deadline passed 0 ms ago before worker "
    assert [o.kind for o in rows(result)] == [ErrorKind.TIMEOUT] * 2  # type: ignore[union-attr]
    assert all(o.message.startswith(prefix) for o in rows(result))  # type: ignore[union-attr]
    assert rows(result)[0].message.endswith("started method 'affine'")  # type: ignore[union-attr]
    assert result.compute_ms == 0.0


def test_heartbeats_when_idle(workers: dict[str, Served]) -> None:
    broker = workers["pipes"].broker
    while not broker.inbox.empty():
        broker.inbox.get()
    start = time.monotonic()
    broker.receive(Heartbeat, timeout_s=2.5)
    broker.receive(Heartbeat, timeout_s=2.5)
    assert 0.5 < time.monotonic() - start < 2.5


def test_silent_broker_makes_the_worker_register_again(workers: dict[str, Served]) -> None:
    pipes = workers["pipes"]
    old_peer = pipes.broker.peer
    pipes.broker.heartbeating = False
    try:
        ready = pipes.broker.receive(Ready, timeout_s=10)
    finally:
        pipes.broker.heartbeating = True
    # the worker waits 3 s after the broker's last message (its liveness), then re-registers
    assert 2.9 < time.monotonic() - pipes.broker.last_sent < 5.0
    assert pipes.broker.peer != old_peer
    assert ready == pipes.ready
    result = run_job(pipes, Job(6, "affine", stack([encode({"x": f32(3, value=2)})]), 60_000.0))
    assert decode(rows(result)[0])["y"].tolist() == [5.0, 5.0, 5.0]  # type: ignore[index]


def test_broker_restart_on_the_same_endpoint(workers: dict[str, Served]) -> None:
    pipes = workers["pipes"]
    endpoint = pipes.broker.endpoint
    pipes.broker.close()
    time.sleep(0.5)
    pipes.broker = FakeBroker(endpoint)
    ready = pipes.broker.receive(Ready, timeout_s=15)
    assert ready.servable == "pipes"
    result = run_job(pipes, Job(7, "affine", stack([encode({"x": f32(3, value=3)})]), 60_000.0))
    assert decode(rows(result)[0])["y"].tolist() == [7.0, 7.0, 7.0]  # type: ignore[index]


def test_sigterm_drains_then_sends_disconnect_and_exits(workers: dict[str, Served]) -> None:
    legacy = workers["legacy"]
    result = run_job(
        legacy,
        Job(
            1, "add_common", stack([encode({"x1": f32(2, 2, value=1), "x2": f32(2, 2)})]), 60_000.0
        ),
    )
    assert decode(rows(result)[0])["y"].tolist() == [[1.0, 1.0], [1.0, 1.0]]  # type: ignore[index]
    legacy.proc.process.send_signal(signal.SIGTERM)
    drain = legacy.broker.receive(Drain, timeout_s=5)
    assert drain.reason == "worker shutting down"
    time.sleep(0.5)  # draining: the worker stays until the broker answers
    assert legacy.proc.process.poll() is None
    legacy.broker.send(Drain("drained"))
    goodbye = legacy.broker.receive(Disconnect, timeout_s=5)
    assert goodbye.reason == "worker shutting down"
    assert legacy.proc.process.wait(timeout=10) == 0


def test_cli_errors_exit_with_a_clear_message(servable_dir: Path) -> None:
    command = [sys.executable, "-m", "msq.workers.cli", "--servable-dir", str(servable_dir)]

    def run(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], check=False, capture_output=True, text=True, timeout=timeout_s
        )

    gpu = run("--servable", "legacy", "--device", "gpu:0", timeout_s=120)
    assert gpu.returncode == 1
    assert "msq-worker: device gpu:0 is not available" in gpu.stderr
    bad = run("--servable", "legacy:x")
    assert bad.returncode == 2
    assert "invalid servable 'legacy:x': use NAME or NAME:VERSION" in bad.stderr
    endpoint = run("--servable", "legacy", "--broker", "127.0.0.1:5601")
    assert endpoint.returncode == 1
    assert "msq-worker: invalid broker endpoint '127.0.0.1:5601'" in endpoint.stderr
    level = run("--servable", "legacy", "--log-level", "loud")
    assert level.returncode == 2
    assert "--log-level: invalid choice: 'LOUD'" in level.stderr
