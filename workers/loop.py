"""The worker loop: registration, heartbeats and reconnection around one compute thread.

The main thread owns the sockets: one DEALER per broker (`msq.workers.brokers`). It registers
with every broker (`Ready`), sends each a `Heartbeat` when it sent it nothing for a second, and
treats a broker silent for 3 seconds, asking it to register again, or reporting another
incarnation in its heartbeats as lost: it closes that DEALER and registers again on a new one.

Credits: the worker announces its whole `capacity` to every broker, so one broker alone can keep
it busy and losing a broker loses none of its capacity; with several busy brokers it holds up
to brokers x capacity jobs and runs them in arrival order, which shares it between them in
proportion to their load. Jobs go to one compute thread that runs them in order and hands
each encoded `Result` back through an inproc PAIR socket, which wakes the main thread; a job
expected to be quick (under `INLINE_LIMIT_MS`) runs on the main thread itself when the compute
thread is idle.
A job's `timeout_ms` becomes a deadline on this worker's clock when the job arrives; a job still
unstarted at its deadline is answered timed out without being computed (`JobRunner`).
Jobs of a broker registration that ended (the broker was lost or restarted) are dropped: not
started if still queued, a running one's result discarded. That broker re-queued them (it is
alive) or they are gone with it (the gateways send their requests again).
`stop()` (SIGTERM) drains: the worker sends `Drain` to every broker, keeps running the jobs
they still send (a broker routes it nothing new while another worker serves its methods) and
leaves once each broker answered `Drain`, forgot it, or went silent for `liveness_s`.
`suspend(reason)` (from any thread: a distributed servable lost a rank) leaves every broker
(`Disconnect`, so each re-dispatches the jobs in flight) and drops every result until `resume()`
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
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from msq import tracing
from msq.process import log_fields
from msq.proto import transport
from msq.proto.columns import Outcomes, count_rows
from msq.proto.curve import CurveClient
from msq.proto.deadline import Deadline, DeadlineSource
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Disconnect, Drain, Heartbeat, Job, Message, Ready, Result
from msq.proto.wire import WireError
from msq.workers.brokers import BrokerConnection, first_due

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
            with tracing.job_spans(job.job_id, count_rows(job.columns), traces, arrived_ns):
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
            return _failed(job, failure)
        if logger.isEnabledFor(logging.DEBUG):
            count = count_rows(job.columns)
            logger.debug("job %d: method %s, %d instances", job.job_id, job.method, count)
        try:
            return self.execute(job)
        except Exception as exc:  # a bug must not stop the worker: fail the job's instances
            logger.exception("job %d of method %s failed", job.job_id, job.method)
            failure = Failure(ErrorKind.INTERNAL, f"worker {os.getpid()} failed the job: {exc}")
            return _failed(job, failure)


class WorkerLoop:
    """Serve jobs from one or more brokers until `stop()` is called (from any thread or a
    signal)."""

    def __init__(
        self,
        broker: str | Sequence[str],
        ready: Ready,
        execute: Callable[[Job], Result],
        *,
        heartbeat_s: float = 1.0,
        liveness_s: float = 3.0,
        max_retry_delay_s: float = 32.0,
        on_registered: Callable[[], None] | None = None,
        on_result: Callable[[Job, Result], None] | None = None,
        curve: CurveClient | None = None,
    ) -> None:
        """`broker`: one broker's backend endpoint, or several (a sequence or a comma-separated
        string). `on_registered` is called after each registration with a broker, `on_result`
        with each job and its result, from the thread that ran it; `curve`: connect with CURVE
        (see `msq.proto.curve`)."""
        self.ready = ready
        self.runner = JobRunner(execute)
        self.on_registered = on_registered
        self.on_result = on_result
        self._stopping = threading.Event()
        self._context: zmq.Context[Any] = zmq.Context()
        self.brokers = [
            BrokerConnection(
                address,
                self._context,
                ready,
                heartbeat_s=heartbeat_s,
                liveness_s=liveness_s,
                max_retry_delay_s=max_retry_delay_s,
                curve=curve,
            )
            for address in transport.endpoints(broker)
        ]
        self._jobs: queue.SimpleQueue[tuple[int, int, Job, Deadline] | None] = queue.SimpleQueue()
        self._results_address = f"inproc://msq-worker-results-{id(self)}"
        self._results = self._context.socket(zmq.PAIR)
        self._results.bind(self._results_address)
        self._poller = zmq.Poller()
        self._polled: list[Socket | None] = []
        #: Jobs handed to the compute thread whose results have not come back yet.
        self._queued = 0
        #: Compute time per instance of each method's last job (unknown: compute thread).
        self._instance_ms: dict[str, float] = {}
        self._suspend_lock = threading.Lock()
        #: Why the worker is suspended (`suspend`), or None while it serves.
        self._suspended: str | None = None
        self._resumed = threading.Event()

    def stop(self) -> None:
        """Ask the loop to leave: it drains, sends `Disconnect` to every broker and returns from
        `run`."""
        self._stopping.set()

    def suspend(self, reason: str) -> None:
        """Stop serving until `resume()` (any thread): the results of the jobs received so far
        are dropped and every broker is told to re-dispatch them (`Disconnect(reason)`)."""
        with self._suspend_lock:
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
            while not self._stopping.is_set():
                self._step()
            logger.info("draining")
            now = time.monotonic()
            for connection in self.brokers:
                connection.leave(now)
            while not all(connection.drained for connection in self.brokers):
                self._step()
            for connection in self.brokers:
                connection.send(Disconnect("worker shutting down"))
        finally:
            self._jobs.put(None)
            compute.join(timeout=1.0)
            for connection in self.brokers:
                if connection.dealer is not None:
                    connection.dealer.close(linger=100)
            self._results.close()
            if not compute.is_alive():  # else a long job still runs: the process exits anyway
                self._context.term()

    def _step(self) -> None:
        if self._suspended is not None:
            self._pause(self._suspended)
            return
        now = time.monotonic()
        for connection in self.brokers:
            if connection.step(now) and self.on_registered is not None:
                self.on_registered()
        dealers = [connection.dealer for connection in self.brokers]
        if dealers != self._polled:  # a registration began or ended: poll the new sockets
            self._polled, self._poller = dealers, zmq.Poller()
            for sock in [self._results, *dealers]:
                if sock is not None:
                    self._poller.register(sock, zmq.POLLIN)
        wait_s = min(first_due(self.brokers, time.monotonic()), 0.25)
        events = dict(self._poller.poll(timeout=round(wait_s * 1000)))
        if self._results in events:
            self._forward_results()
        for index, connection in enumerate(self.brokers):
            dealer = connection.dealer
            if dealer is not None and dealer in events:
                self._receive(index, connection, dealer)

    def _pause(self, reason: str) -> None:
        """Leave every broker, drop results until `resume()`, then register again."""
        logger.warning("leaving the brokers until the servable is back: %s", reason)
        for connection in self.brokers:
            connection.send(Disconnect(f"worker unavailable: {reason}"))
            connection.close(linger_ms=100)
        while not self._stopping.is_set() and not self._resumed.wait(0.25):
            self._forward_results()  # dropped: from before the suspension
        with self._suspend_lock:
            self._suspended = None
        if not self._stopping.is_set():
            now = time.monotonic()
            for connection in self.brokers:
                connection.register(now)
            if self.on_registered is not None:
                self.on_registered()

    def _receive(self, index: int, connection: BrokerConnection, dealer: Socket) -> None:
        """Handle a broker's waiting messages (a bounded number, to stay responsive)."""
        for _ in range(_DRAIN_LIMIT):
            if not transport.readable(dealer):
                return
            frames = dealer.recv_multipart(copy=False, flags=zmq.NOBLOCK)
            connection.heard(time.monotonic())
            self._handle(index, connection, frames)
            if connection.dealer is not dealer:
                return

    def _handle(self, index: int, connection: BrokerConnection, frames: list[zmq.Frame]) -> None:
        try:
            message: Message = transport.message_of(frames)
        except WireError as exc:
            logger.warning("dropped a malformed message from the broker: %s", exc)
            return
        match message:
            case Job():
                connection.answered()
                deadline = self.runner.received(message)
                if self._runs_inline(message):
                    result = self._run(message, deadline)
                    if self._suspended is None:
                        connection.send(result)
                else:
                    self._queued += 1
                    self._jobs.put((index, connection.generation, message, deadline))
            case Heartbeat():
                connection.answered()
                if connection.restarted(message.incarnation):
                    connection.register_again(
                        time.monotonic(), f"restarted (incarnation {message.incarnation})"
                    )
            case Drain():
                logger.info("drained by broker %s", connection.address)
                connection.drained = True
            case Disconnect():
                connection.register_again(time.monotonic(), f"asked: {message.reason}")
            case _:
                logger.warning("dropped an unexpected %s from the broker", type(message).__name__)

    def _runs_inline(self, job: Job) -> bool:
        """Whether to run `job` here: the compute thread is idle and the job looks quick."""
        per_instance_ms = self._instance_ms.get(job.method)
        return (
            self._queued == 0
            and per_instance_ms is not None
            and per_instance_ms * count_rows(job.columns) < INLINE_LIMIT_MS
        )

    def _forward_results(self) -> None:
        for _ in range(_DRAIN_LIMIT):
            if not transport.readable(self._results):
                return
            header, *frames = self._results.recv_multipart(copy=False, flags=zmq.NOBLOCK)
            self._queued -= 1
            index, generation = _unpack(header.bytes)
            connection = self.brokers[index]
            if generation == connection.generation and self._suspended is None:
                connection.send_frames(frames)
            else:
                logger.info("dropped the result of a job from before re-registering")

    # ------------------------------------------------------------------------------ compute thread

    def _compute(self) -> None:
        results = self._context.socket(zmq.PAIR)
        results.connect(self._results_address)
        try:
            while (item := self._jobs.get()) is not None:
                index, generation, job, deadline = item
                if generation != self.brokers[index].generation:
                    logger.info("job %d not computed: its broker registration ended", job.job_id)
                    frames: list[Any] = []
                else:
                    frames = transport.frames_of(self._run(job, deadline))
                header = index.to_bytes(4, "little") + generation.to_bytes(8, "little")
                results.send_multipart([header, *frames], copy=False)
        finally:
            results.close(linger=0)

    def _run(self, job: Job, deadline: Deadline) -> Result:
        result = self.runner.run(job, deadline)
        if self.on_result is not None:
            self.on_result(job, result)
        if result.compute_ms > 0:
            self._instance_ms[job.method] = result.compute_ms / max(1, count_rows(job.columns))
        return result


def _failed(job: Job, failure: Failure) -> Result:
    """The result of a job whose every instance failed with `failure`."""
    outcomes = Outcomes.failed(count_rows(job.columns), failure)
    return Result(job.job_id, outcomes.columns, outcomes.failures)


def _unpack(header: bytes) -> tuple[int, int]:
    """(broker index, generation) of a result handed back by the compute thread."""
    return int.from_bytes(header[:4], "little"), int.from_bytes(header[4:], "little")
