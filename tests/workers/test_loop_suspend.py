"""`WorkerLoop.suspend` / `resume` against a real ROUTER standing in for the broker: the
worker leaves with `Disconnect`, drops the result of the job it was running (the broker
re-dispatches it) and registers again with a new identity."""

from __future__ import annotations

import threading
from typing import Any

import zmq

from msq.proto import transport
from msq.proto.messages import Disconnect, Heartbeat, Job, Message, Ready, Result
from msq.workers.loop import WorkerLoop
from tests.processes import endpoint


def _next(router: zmq.Socket[Any], timeout_s: float = 10.0) -> tuple[bytes, Message]:
    """The next message from the worker that is not a heartbeat."""
    while True:
        assert router.poll(round(timeout_s * 1000)), "the worker sent nothing"
        peer, *frames = router.recv_multipart(copy=False)
        message = transport.message_of(frames)
        if not isinstance(message, Heartbeat):
            return bytes(peer.buffer), message


def test_suspend_leaves_the_broker_drops_the_running_job_and_resume_registers_again() -> None:
    context: zmq.Context[Any] = zmq.Context()
    address = endpoint()
    router = transport.router(context, address)
    started, release = threading.Event(), threading.Event()

    def execute(job: Job) -> Result:
        started.set()
        release.wait(10)
        return Result(job.job_id, [])

    ready = Ready("tp", 1, (), capacity=1)
    loop = WorkerLoop(address, ready, execute)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        first, message = _next(router)
        assert message == ready
        router.send_multipart(transport.frames_of(Job(7, "m", [], 10_000.0), peer=first))
        assert started.wait(10)
        loop.suspend("rank 1 exited")
        peer, message = _next(router)
        assert (peer, message) == (first, Disconnect("worker unavailable: rank 1 exited"))
        release.set()  # the job ends after the suspension: its result must not be sent
        assert not router.poll(1500)  # neither the result nor heartbeats: the worker left
        loop.resume()
        second, message = _next(router)
        assert message == ready
        assert second != first
    finally:
        release.set()
        loop.stop()
        thread.join(timeout=10)
        router.close(linger=0)
        context.term()
