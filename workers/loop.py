"""The worker loop: registration, heartbeats and reconnection around one compute thread.

The main thread owns the sockets. It registers with the broker (`Ready`), sends a
`Heartbeat` when it sent nothing for a second, and treats a broker silent for 3 seconds as
lost: it closes its DEALER and registers again on a new one, waiting 1 s, 2 s, ... up to
32 s between failed tries. Jobs go to one compute thread that runs them in order and hands
each encoded `Result` back through an inproc PAIR socket, which wakes the main thread; a job
expected to be quick (under `INLINE_LIMIT_MS`) runs on the main thread itself when the compute
thread is idle.
A job's `timeout_ms` becomes a deadline on this worker's clock when the job arrives; a job still
unstarted at its deadline is answered timed out without being computed (`JobRunner`).
Results of jobs received before a re-registration are dropped: the broker has re-queued them.
`suspend(reason)` (from any thread: a distributed servable lost a rank) leaves the broker
(`Disconnect`, so it re-dispatches the jobs in flight) and drops every result until `resume()`
registers again.
Every line logged while a job runs (model errors included) names the job's request ids
(`msq.process.log_fields`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from msq import tracing
from msq.process import log_fields
from msq.proto import transport
from msq.proto.deadline import Deadline, DeadlineSource
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Disconnect, Heartbeat, Job, Message, Ready, Result
from msq.proto.wire import WireError

logger = logging.getLogger(__name__)

Socket = zmq.Socket[Any]

#: Most messages handled from one socket before looking at the other.
_DRAIN_LIMIT = 100
#: A job expected (from its method's last job, per instance) to take less than this runs on
#: the I/O thread when the compute thread is idle: it saves two thread hand-offs (~0.1 ms)
#: and delays heartbeats by about this much at most.
INLINE_LIMIT_MS = 20.0


class JobRunner:
    """Runs a worker's jobs, each against its deadline on this worker's clock.

    A job whose deadline passed before it started is not computed: each of its instances is
    answered with a TIMEOUT failure, and `expired` counts such jobs. An exception from
    `execute` fails the job's instances with an INTERNAL failure. Thread-safe.
    """

    def __init__(
        self, execute: Callable[[Job], Result], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.execute = execute
        self.clock = clock
        #: Jobs answered timed out without being computed.
        self.expired = 0
        self._lock = threading.Lock()

    def received(self, job: Job) -> Deadline:
        """The deadline of a job that has just arrived."""
        return Deadline.after(job.timeout_ms / 1000.0, DeadlineSource.JOB, self.clock())

    def run(self, job: Job, deadline: Deadline) -> Result:
        """The job's result, computed only if its deadline has not passed."""
        with log_fields(request_ids=job.rids):
            if not (job.traces and tracing.enabled()):
                return self._run(job, deadline)
            arrived_s = deadline.at - job.timeout_ms / 1000.0  # on `clock`, when it came
            arrived_ns = time.time_ns() - round((self.clock() - arrived_s) * 1e9)
            traces = [(trace.traceparent, trace.queued_ms) for trace in job.traces]
            with tracing.job_spans(job.job_id, len(job.instances), traces, arrived_ns):
                return self._run(job, deadline)

    def _run(self, job: Job, deadline: Deadline) -> Result:
        now = self.clock()
        if deadline.expired(now):
            with self._lock:
                self.expired += 1
            late_ms = -deadline.remaining_s(now) * 1000.0
            failure = Failure(
                ErrorKind.TIMEOUT,
                f"request timed out: its deadline passed {late_ms:.0f} ms ago before worker "
                f"{os.getpid()} started method '{job.method}'",
            )
            logger.info("job %d not computed: %s", job.job_id, failure.message)
            return Result(job.job_id, [failure] * len(job.instances))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "job %d: method %s, %d instances", job.job_id, job.method, len(job.instances)
            )
        try:
            return self.execute(job)
        except Exception as exc:  # a bug must not stop the worker: fail the job's instances
            logger.exception("job %d of method %s failed", job.job_id, job.method)
            failure = Failure(ErrorKind.INTERNAL, f"worker {os.getpid()} failed the job: {exc}")
            return Result(job.job_id, [failure] * len(job.instances))


class WorkerLoop:
    """Serve jobs from a broker until `stop()` is called (from any thread or a signal)."""

    def __init__(
        self,
        broker: str,
        ready: Ready,
        execute: Callable[[Job], Result],
        *,
        heartbeat_s: float = 1.0,
        liveness_s: float = 3.0,
        max_retry_delay_s: float = 32.0,
        on_registered: Callable[[], None] | None = None,
        on_result: Callable[[Job, Result], None] | None = None,
    ) -> None:
        """`on_result` is called with each job and its result, from the thread that ran it."""
        self.broker = broker
        self.ready = ready
        self.runner = JobRunner(execute)
        self.heartbeat_s = heartbeat_s
        self.liveness_s = liveness_s
        self.max_retry_delay_s = max_retry_delay_s
        self.on_registered = on_registered
        self.on_result = on_result
        self._stopping = threading.Event()
        self._context: zmq.Context[Any] = zmq.Context()
        self._jobs: queue.SimpleQueue[tuple[int, Job, Deadline] | None] = queue.SimpleQueue()
        self._results_address = f"inproc://msq-worker-results-{id(self)}"
        self._results = self._context.socket(zmq.PAIR)
        self._results.bind(self._results_address)
        self._dealer: Socket | None = None
        self._poller = zmq.Poller()
        self._generation = 0
        self._retry_delay_s = 0.0
        self._last_heard = self._last_sent = 0.0
        #: Jobs handed to the compute thread whose results have not come back yet.
        self._queued = 0
        #: Compute time per instance of each method's last job (unknown: compute thread).
        self._instance_ms: dict[str, float] = {}
        self._generation_lock = threading.Lock()
        #: Why the worker is suspended (`suspend`), or None while it serves.
        self._suspended: str | None = None
        self._resumed = threading.Event()

    def stop(self) -> None:
        """Ask the loop to leave: it sends `Disconnect` and returns from `run`."""
        self._stopping.set()

    def suspend(self, reason: str) -> None:
        """Stop serving until `resume()` (any thread): the results of the jobs received so far
        are dropped and the broker is told to re-dispatch them (`Disconnect(reason)`)."""
        with self._generation_lock:
            self._generation += 1
            self._suspended = reason
            self._resumed.clear()

    def resume(self) -> None:
        """Register again after `suspend` (any thread)."""
        self._resumed.set()

    # ------------------------------------------------------------------------------ main thread

    def run(self) -> None:
        """Register, then serve until stopped; closes every socket on return."""
        compute = threading.Thread(target=self._compute, name="msq-compute", daemon=True)
        compute.start()
        try:
            self._register()
            while not self._stopping.is_set():
                self._step()
            self._send(Disconnect("worker shutting down"))
        finally:
            self._jobs.put(None)
            compute.join(timeout=1.0)
            if self._dealer is not None:
                self._dealer.close(linger=100)
            self._results.close()
            if not compute.is_alive():  # else a long job still runs: the process exits anyway
                self._context.term()

    def _step(self) -> None:
        if self._suspended is not None:
            self._pause(self._suspended)
            return
        dealer = self._dealer
        assert dealer is not None
        now = time.monotonic()
        wait_s = min(self._last_sent + self.heartbeat_s, self._last_heard + self.liveness_s) - now
        events = dict(self._poller.poll(timeout=round(max(0.0, min(wait_s, 0.25)) * 1000)))
        if self._results in events:
            self._forward_results()
        if dealer in events:
            self._receive(dealer)
        now = time.monotonic()
        if self._dealer is dealer and now - self._last_heard > self.liveness_s:
            logger.warning(
                "broker %s silent for %.1f s: registering again", self.broker, self.liveness_s
            )
            self._register()
        elif now - self._last_sent >= self.heartbeat_s:
            self._send(Heartbeat())

    def _pause(self, reason: str) -> None:
        """Leave the broker, drop results until `resume()`, then register again."""
        logger.warning("leaving broker %s until the servable is back: %s", self.broker, reason)
        self._send(Disconnect(f"worker unavailable: {reason}"))
        if self._dealer is not None:
            self._dealer.close(linger=100)
            self._dealer = None
        while not self._stopping.is_set() and not self._resumed.wait(0.25):
            self._forward_results()  # dropped: from before the suspension
        with self._generation_lock:
            self._suspended = None
        self._retry_delay_s = 0.0
        if not self._stopping.is_set():
            self._register()

    def _register(self) -> None:
        """Open a new DEALER and send `Ready`, after the current retry delay."""
        if self._dealer is not None:
            self._dealer.close(linger=0)
            self._dealer = None
        if self._retry_delay_s and self._stopping.wait(self._retry_delay_s):
            return
        self._retry_delay_s = min(max(1.0, self._retry_delay_s * 2), self.max_retry_delay_s)
        with self._generation_lock:
            self._generation += 1
        self._dealer = transport.dealer(self._context, self.broker)
        self._poller = zmq.Poller()
        self._poller.register(self._dealer, zmq.POLLIN)
        self._poller.register(self._results, zmq.POLLIN)
        self._last_heard = time.monotonic()
        self._send(self.ready)
        if self.on_registered is not None:
            self.on_registered()
        logger.info("registered with broker %s", self.broker)

    def _receive(self, dealer: Socket) -> None:
        """Handle the broker's waiting messages (a bounded number, to stay responsive)."""
        for _ in range(_DRAIN_LIMIT):
            try:
                frames = dealer.recv_multipart(copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            self._last_heard = time.monotonic()
            self._handle(frames)
            if self._dealer is not dealer:
                return

    def _handle(self, frames: list[zmq.Frame]) -> None:
        try:
            message: Message = transport.message_of(frames)
        except WireError as exc:
            logger.warning("dropped a malformed message from the broker: %s", exc)
            return
        match message:
            case Job():
                self._retry_delay_s = 0.0
                deadline = self.runner.received(message)
                if self._runs_inline(message):
                    generation = self._generation
                    result = self._run(message, deadline)
                    if generation == self._generation and self._suspended is None:
                        self._send(result)
                else:
                    self._queued += 1
                    self._jobs.put((self._generation, message, deadline))
            case Heartbeat():
                self._retry_delay_s = 0.0
            case Disconnect():
                logger.warning("broker asked to register again: %s", message.reason)
                self._register()
            case _:
                logger.warning("dropped an unexpected %s from the broker", type(message).__name__)

    def _runs_inline(self, job: Job) -> bool:
        """Whether to run `job` here: the compute thread is idle and the job looks quick."""
        per_instance_ms = self._instance_ms.get(job.method)
        return (
            self._queued == 0
            and per_instance_ms is not None
            and per_instance_ms * len(job.instances) < INLINE_LIMIT_MS
        )

    def _forward_results(self) -> None:
        for _ in range(_DRAIN_LIMIT):
            try:
                generation, *frames = self._results.recv_multipart(copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            self._queued -= 1
            current = self._generation if self._suspended is None else -1
            if int.from_bytes(generation.buffer, "little") == current:
                self._send_frames(frames)
            else:
                logger.info("dropped the result of a job from before re-registering")

    def _send(self, message: Message) -> None:
        self._send_frames(transport.frames_of(message))

    def _send_frames(self, frames: list[Any]) -> None:
        if self._dealer is None:
            return
        try:
            self._dealer.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
            self._last_sent = time.monotonic()
        except zmq.Again:
            logger.warning("broker %s is not taking messages: one dropped", self.broker)

    # ------------------------------------------------------------------------------ compute thread

    def _compute(self) -> None:
        results = self._context.socket(zmq.PAIR)
        results.connect(self._results_address)
        try:
            while (item := self._jobs.get()) is not None:
                generation, job, deadline = item
                result = self._run(job, deadline)
                header = generation.to_bytes(8, "little")
                results.send_multipart([header, *transport.frames_of(result)], copy=False)
        finally:
            results.close(linger=0)

    def _run(self, job: Job, deadline: Deadline) -> Result:
        result = self.runner.run(job, deadline)
        if self.on_result is not None:
            self.on_result(job, result)
        if result.compute_ms > 0:
            self._instance_ms[job.method] = result.compute_ms / max(1, len(job.instances))
        return result
