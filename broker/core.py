"""The broker's sans-IO scheduling core.

`BrokerCore` is driven by method calls — a request arrived, a worker registered, a result came
back, a worker was lost, time passed — and returns the messages to send. It owns no socket and
reads no clock, so every failure case is a plain unit test. The I/O loop in `msq.broker.loop`
is a thin shell around it.

Log lines about requests carry their ids (`Request.rid`) as `extra` (`request_id`, or
`request_ids` for a job's requests; see `msq.process`); per-request lines are DEBUG and only
built when DEBUG is on.

Guarantees: every accepted request gets exactly one `Reply` (or none if the gateway cancelled
it), by its deadline, with one outcome per instance in order; instances are queued per
(servable, version, method) as row ranges of their requests' columns, and ranges are split and
coalesced into jobs no larger than the method's batch size (slices: no tensor byte is copied);
the work of a lost worker is re-dispatched (at most `max_redispatch` times per row range).

Liveness: the core heartbeats workers, answers each gateway link's `Heartbeat` with one of its
own, and every heartbeat it sends carries its `incarnation`, so that a worker or gateway sees a
restarted broker at once; `msq.broker.gateways` keeps the gateway links, `msq.broker.draining`
the rules for draining workers, `msq.broker.redispatch` what becomes of a lost worker's work.
"""

from __future__ import annotations

import enum
import functools
import itertools
import logging
from typing import NamedTuple

from msq.broker import draining, redispatch
from msq.broker.admission import admit, registration_problem
from msq.broker.catalog import Catalog
from msq.broker.control import ControlMessage, ControlRelay
from msq.broker.gateways import GatewayLinks
from msq.broker.records import (
    RunningJob,
    WorkerState,
    job_message,
    request_ids,
    settled_ranges,
)
from msq.broker.requests import RequestTable
from msq.broker.routes import Route, RouteKey
from msq.broker.settings import BrokerSettings
from msq.broker.stats import INCARNATION, broker_info, worker_info
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    Cancel,
    Disconnect,
    Drain,
    Heartbeat,
    Message,
    Ready,
    Request,
    Result,
    Status,
    StatusQuery,
)

log = logging.getLogger(__name__)
_DEBUG_ON = functools.partial(log.isEnabledFor, logging.DEBUG)


class Endpoint(enum.Enum):
    """Which broker socket a message goes out on."""

    FRONTEND = "frontend"
    BACKEND = "backend"


class Outgoing(NamedTuple):
    """A message for the I/O loop to send to `peer` on `endpoint`."""

    endpoint: Endpoint
    peer: bytes
    message: Message


class BrokerCore:
    """The scheduling state machine; see the module docstring."""

    def __init__(
        self,
        settings: BrokerSettings | None = None,
        *,
        now: float = 0.0,
        incarnation: str = INCARNATION,
    ) -> None:
        self.settings = settings or BrokerSettings()
        self.started_at = now
        self.incarnation = incarnation
        self.workers: dict[bytes, WorkerState] = {}
        self.jobs: dict[int, RunningJob] = {}
        self.catalog = Catalog(self.settings)
        self.requests = RequestTable(
            lambda client, reply: self._emit(Endpoint.FRONTEND, client, reply)
        )
        self.gateways = GatewayLinks(self.requests, self.settings)
        self.control = ControlRelay(self.catalog.infos)
        self._job_ids = itertools.count(1)
        self._outbox: list[Outgoing] = []

    # ------------------------------------------------------------------ gateway side

    def on_request(self, client: bytes, request: Request, now: float) -> list[Outgoing]:
        """A gateway sent a request: validate, admit and queue its instances."""
        self.requests.expire(now)
        route = admit(
            self.requests, self.catalog, client, request, now,
            default_timeout_s=self.settings.default_timeout_s,
        )  # fmt: skip
        if route is not None:
            self._dispatch(route, now)
        return self._flush()

    def on_cancel(self, client: bytes, cancel: Cancel, now: float) -> list[Outgoing]:
        """The caller went away: drop the request without replying."""
        self.requests.cancel((client, cancel.request_id))
        self.requests.expire(now)
        return self._flush()

    def on_status_query(self, client: bytes, query: StatusQuery, now: float) -> list[Outgoing]:
        """A gateway asked what is served and for the statistics."""
        self._emit(Endpoint.FRONTEND, client, self.status(query.request_id, now))
        return self._flush()

    def on_control(self, client: bytes, message: ControlMessage, now: float) -> list[Outgoing]:
        """A controller announced itself or answered, or a gateway sent a repository command
        (`msq.broker.control`)."""
        for peer, answer in self.control.on_message(client, message):
            self._emit(Endpoint.FRONTEND, peer, answer)
        return self._flush()

    def on_gateway_heartbeat(self, client: bytes, now: float) -> list[Outgoing]:
        """A gateway link's heartbeat: note it alive and answer with this broker's."""
        self.gateways.heard(client, now)
        self._emit(Endpoint.FRONTEND, client, Heartbeat(self.incarnation))
        return self._flush()

    def on_malformed_request(
        self, client: bytes, request_id: int, problem: str, now: float
    ) -> list[Outgoing]:
        """A gateway sent a message that names a request but cannot be decoded."""
        self.requests.reject(client, request_id, Failure(ErrorKind.INVALID_INPUT, problem))
        return self._flush()

    # ------------------------------------------------------------------ worker side

    def on_worker_message(self, worker_id: bytes, message: Message, now: float) -> list[Outgoing]:
        """Any message from a worker."""
        self.requests.expire(now)
        match message:
            case Ready():
                self._register(worker_id, message, now)
            case Result():
                self._complete(worker_id, message, now)
            case Heartbeat():
                self._touch(worker_id, now)
            case Disconnect():
                self._lose(worker_id, now, message.reason or "worker disconnected")
            case Drain():
                self._start_drain(worker_id, now, message.reason)
            case _:
                log.warning("ignoring %s from worker %s", type(message).__name__, worker_id.hex())
        return self._flush()

    def on_worker_lost(self, worker_id: bytes, now: float, reason: str) -> list[Outgoing]:
        """The I/O loop found a worker unreachable."""
        self._lose(worker_id, now, reason)
        return self._flush()

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Outgoing]:
        """Expire deadlines, silent gateway links and silent or hung workers, send heartbeats,
        close batch windows."""
        self.requests.expire(now)
        settings = self.settings
        self.gateways.forget_silent(now)
        for worker in list(self.workers.values()):
            if now - worker.last_seen > settings.worker_expiry_s:
                self._lose(worker.worker_id, now, "worker missed its heartbeats")
            elif any(
                now - self.jobs[job_id].dispatched_at > settings.job_timeout_s
                for job_id in worker.jobs
            ):
                self._emit(Endpoint.BACKEND, worker.worker_id, Disconnect("job timed out"))
                self._lose(worker.worker_id, now, "worker did not finish a job in time")
            elif worker.draining and draining.drained(worker):
                self._release(worker, now)
            elif now - worker.last_sent >= settings.heartbeat_interval_s:
                worker.last_sent = now
                self._emit(Endpoint.BACKEND, worker.worker_id, Heartbeat(self.incarnation))
        for route in self._live_routes():
            self._dispatch(route, now)
        return self._flush()

    def next_wakeup(self, now: float) -> float:
        """The latest time at which `tick` must run next."""
        settings = self.settings
        times = [now + settings.heartbeat_interval_s]
        soonest = self.requests.deadlines.soonest()
        if soonest is not None:
            times.append(soonest)
        times.extend(self.gateways.expiries())
        for worker in self.workers.values():
            times.append(worker.last_sent + settings.heartbeat_interval_s)
            times.append(worker.last_seen + settings.worker_expiry_s)
        for job in self.jobs.values():
            times.append(job.dispatched_at + settings.job_timeout_s)
        for route in self._live_routes():
            closes_at = route.window_closes_at()
            if closes_at is not None and draining.free_worker(route, self.workers) is not None:
                times.append(closes_at)
        return min(times)

    def status(self, request_id: int, now: float) -> Status:
        """What is served now, the statistics, and the broker, its workers and routes now."""
        uptime_s = now - self.started_at
        stats = {
            "uptime_s": uptime_s,
            "rejected": dict(self.requests.rejected),
            "routes": self.catalog.report(),
        }
        workers = [worker_info(worker, now) for worker in self.workers.values()]
        return Status(
            request_id, self.catalog.infos(), stats, broker_info(uptime_s), workers,
            self.catalog.live(now, uptime_s),
        )  # fmt: skip

    def shutdown(self) -> list[Outgoing]:
        """The broker is going away: tell each heartbeating gateway link (`Disconnect`; it sends
        its requests to another broker) and answer every other pending request."""
        for client in self.gateways.leave():
            self._emit(Endpoint.FRONTEND, client, Disconnect("broker is shutting down"))
        failure = Failure(ErrorKind.WORKER_UNAVAILABLE, "broker is shutting down")
        self.requests.fail_all(failure)
        return self._flush()

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, route: Route, now: float) -> None:
        while route.workers:
            worker = draining.free_worker(route, self.workers)
            if worker is None:
                return
            size = route.job_size(now)
            if size == 0:
                return
            items = route.take(size)
            for item in items:
                route.stats.queue_delay_ms.observe((now - item.enqueued_at) * 1000.0, item.count)
            job_id = next(self._job_ids)
            self.jobs[job_id] = RunningJob(job_id, worker.worker_id, route, items, size, now)
            worker.credits -= 1
            worker.last_sent = now
            worker.jobs.add(job_id)
            route.in_flight += 1
            job = job_message(job_id, route.key.method, items, now)
            if _DEBUG_ON():
                key = route.key
                _debug("job %d to worker %s: %d instances for %s.%s version %d", job_id,
                       worker.worker_id.hex(), size, key.servable, key.method, key.version,
                       request_ids=job.rids)  # fmt: skip
            self._emit(Endpoint.BACKEND, worker.worker_id, job)

    def _complete(self, worker_id: bytes, result: Result, now: float) -> None:
        worker = self._touch(worker_id, now)
        if worker is None:
            return
        job = self.jobs.get(result.job_id)
        if job is None or job.worker_id != worker_id:
            log.warning("ignoring result of unknown job %d", result.job_id)
            return
        self._close_job(job, worker)
        job.route.stats.job_done(job.rows, result.compute_ms, result.compute_cpu_ms)
        job.route.stats.window.completed(now, [(i.enqueued_at, i.count) for i in job.items])
        for item, outcomes in settled_ranges(job, result):
            self.requests.settle(item.request, item.start, outcomes)
        self._dispatch(job.route, now)

    def _close_job(self, job: RunningJob, worker: WorkerState) -> None:
        del self.jobs[job.job_id]
        worker.jobs.discard(job.job_id)
        worker.credits += 1
        job.route.in_flight -= 1

    # ------------------------------------------------------------------ workers

    def _register(self, worker_id: bytes, ready: Ready, now: float) -> None:
        if worker_id in self.workers:
            self._lose(worker_id, now, "worker registered again")
        problem = registration_problem(ready)
        if problem is not None:
            log.error("refusing worker %s: %s", worker_id.hex(), problem)
            self._emit(Endpoint.BACKEND, worker_id, Disconnect(f"registration refused: {problem}"))
            return
        worker = WorkerState(worker_id, ready, ready.capacity, last_seen=now, last_sent=now)
        self.workers[worker_id] = worker
        for signature in ready.methods:
            route = self.catalog.add(
                RouteKey(ready.servable, ready.version, signature.name), signature
            )
            route.workers.add(worker_id)
            worker.routes.append(route)
        log.info(
            "worker %s serves %s version %d on %s (%d methods)",
            worker_id.hex(), ready.servable, ready.version, ready.device, len(ready.methods),
        )  # fmt: skip
        for route in worker.routes:
            self._dispatch(route, now)

    def _touch(self, worker_id: bytes, now: float) -> WorkerState | None:
        worker = self.workers.get(worker_id)
        if worker is None:
            self._emit(Endpoint.BACKEND, worker_id, Disconnect("unknown worker: register again"))
            return None
        worker.last_seen = now
        return worker

    def _lose(self, worker_id: bytes, now: float, reason: str) -> None:
        worker = self.workers.pop(worker_id, None)
        if worker is None:
            return
        jobs = [self.jobs[job_id] for job_id in sorted(worker.jobs)]
        log.warning(
            "lost worker %s (%s): %s; re-dispatching %d running jobs",
            worker_id.hex(), worker.ready.servable, reason, len(jobs),
            extra={"request_ids": request_ids(item for job in jobs for item in job.items)},
        )  # fmt: skip
        for job in jobs:
            self._close_job(job, worker)
            for item in reversed(job.items):
                redispatch.requeue(
                    self.requests, job.route, item, reason,
                    max_redispatch=self.settings.max_redispatch,
                )  # fmt: skip
        self._unroute(worker, now)

    def _unroute(self, worker: WorkerState, now: float) -> None:
        """Take a worker that is gone off its routes; a route left without workers retires."""
        for route in worker.routes:
            route.workers.discard(worker.worker_id)
            route.draining.discard(worker.worker_id)
            if route.workers:
                self._dispatch(route, now)
            else:
                redispatch.retire(self.requests, self.catalog, route)

    def _start_drain(self, worker_id: bytes, now: float, reason: str) -> None:
        worker = self._touch(worker_id, now)
        if worker is None or worker.draining:
            return
        draining.start(worker, reason)
        if draining.drained(worker):
            self._release(worker, now)

    def _release(self, worker: WorkerState, now: float) -> None:
        """A drained worker may go: unroute it and tell it so."""
        del self.workers[worker.worker_id]
        self._unroute(worker, now)
        log.info("worker %s drained", worker.worker_id.hex())
        self._emit(Endpoint.BACKEND, worker.worker_id, Drain("drained"))

    # ------------------------------------------------------------------ helpers

    def _emit(self, endpoint: Endpoint, peer: bytes, message: Message) -> None:
        self._outbox.append(Outgoing(endpoint, peer, message))

    def _flush(self) -> list[Outgoing]:
        out, self._outbox = self._outbox, []
        return out

    def _live_routes(self) -> list[Route]:
        return [route for route in self.catalog.routes() if route.live]


def _debug(message: str, *args: object, **ids: object) -> None:
    """Log at DEBUG, with request ids (`request_id=` or `request_ids=`) as extra fields (the
    callers check `_DEBUG_ON()` first, so that nothing is built when DEBUG is off)."""
    log.debug(message, *args, extra=ids)
