"""Property-based tests of the broker core: random traffic, capacities, losses and deadlines."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msq.broker.core import BrokerCore, Endpoint, Outgoing
from msq.broker.settings import BrokerSettings
from msq.proto.columns import count_rows
from msq.proto.deadline import DEFAULT_TIMEOUT_S
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Heartbeat, Job, Reply
from tests.broker.factories import (
    GATEWAY,
    echo_result,
    first_values,
    job_values,
    ready,
    reply_outcomes,
    request,
)

SIZES = (1, 2, 4, 8)
QUEUE_LIMIT = 40

events = st.lists(
    st.one_of(
        st.tuples(
            st.just("request"),
            st.integers(1, 20),
            st.one_of(st.none(), st.integers(1, 200)),
        ),
        st.tuples(st.just("advance"), st.integers(0, 30)),
        st.tuples(st.just("complete"), st.integers(0, 3)),
        st.tuples(st.just("lose"), st.integers(0, 3)),
        st.tuples(st.just("register"), st.integers(1, 3)),
    ),
    max_size=60,
)


@dataclass
class Simulation:
    core: BrokerCore
    now: float = 0.0
    next_request: int = 1
    next_worker: int = 0
    running: dict[bytes, deque[Job]] = field(default_factory=dict)
    sent: dict[int, tuple[list[float], float]] = field(default_factory=dict)
    answered: dict[int, Reply] = field(default_factory=dict)
    answered_at: dict[int, float] = field(default_factory=dict)
    lost: int = 0

    def absorb(self, out: list[Outgoing]) -> None:
        for item in out:
            message = item.message
            if isinstance(message, Job):
                assert item.endpoint is Endpoint.BACKEND and item.peer in self.running
                assert 1 <= count_rows(message.columns) <= SIZES[-1]
                self.check_job_deadline(message)
                self.running[item.peer].append(message)
            elif isinstance(message, Reply):
                assert message.request_id not in self.answered, "answered twice"
                self.answered[message.request_id] = message
                self.answered_at[message.request_id] = self.now
        # Admission keeps the queue within its limit; a lost worker's jobs (at most
        # capacity 3 x batch 8 instances) go back to the queue on top of it.
        for route in self.core.catalog.servables.get("model", {}).get(1, {}).values():
            assert route.live <= QUEUE_LIMIT + self.lost * 3 * SIZES[-1]

    def check_job_deadline(self, job: Job) -> None:
        """A job carries the time left until the latest deadline of its instances' requests."""
        requests = {int(value // 100) for value in job_values(job)}
        latest = max(self.sent[request_id][1] for request_id in requests)
        assert job.timeout_ms == pytest.approx(max(0.0, (latest - self.now) * 1000.0))

    def register(self, capacity: int) -> None:
        worker = b"w%d" % self.next_worker
        self.next_worker += 1
        self.running[worker] = deque()
        self.absorb(
            self.core.on_worker_message(
                worker,
                ready(capacity=capacity, sizes=SIZES, delay_ms=5.0, queue=QUEUE_LIMIT),
                self.now,
            )
        )

    def workers(self) -> list[bytes]:
        return sorted(self.running)

    def step(self, event: tuple[object, ...]) -> None:
        kind = event[0]
        if kind == "request":
            count, timeout = event[1], event[2]
            assert isinstance(count, int)
            request_id = self.next_request
            self.next_request += 1
            values = [request_id * 100.0 + i for i in range(count)]
            timeout_ms = None if timeout is None else float(timeout)  # type: ignore[arg-type]
            deadline = self.now + (timeout_ms / 1000 if timeout_ms else DEFAULT_TIMEOUT_S)
            self.sent[request_id] = (values, deadline)
            req = request(request_id, values, timeout_ms=timeout_ms)
            self.absorb(self.core.on_request(GATEWAY, req, self.now))
        elif kind == "advance":
            assert isinstance(event[1], int)
            target = self.now + event[1] / 1000.0
            while (wakeup := self.core.next_wakeup(self.now)) < target:
                self.now = max(self.now, wakeup)  # the I/O loop ticks at each wakeup
                self.absorb(self.core.tick(self.now))
            self.now = target
        elif kind == "complete" and self.running:
            worker = self.workers()[event[1] % len(self.running)]  # type: ignore[operator]
            if self.running[worker]:
                job = self.running[worker].popleft()
                self.absorb(self.core.on_worker_message(worker, echo_result(job), self.now))
        elif kind == "lose" and self.running:
            worker = self.workers()[event[1] % len(self.running)]  # type: ignore[operator]
            del self.running[worker]
            self.lost += 1
            self.absorb(self.core.on_worker_lost(worker, self.now, "lost in test"))
        elif kind == "register":
            assert isinstance(event[1], int)
            self.register(event[1])
        for worker in self.running:
            self.absorb(self.core.on_worker_message(worker, Heartbeat(), self.now))
        self.absorb(self.core.tick(self.now))

    def drain(self) -> None:
        for _ in range(10_000):
            if len(self.answered) == len(self.sent):
                return
            busy = [worker for worker, queue in self.running.items() if queue]
            if busy:
                self.step(("complete", self.workers().index(busy[0])))
            else:
                self.step(("advance", 10))
        raise AssertionError("requests left unanswered")


@settings(max_examples=300, deadline=None)
@given(events=events)
def test_every_request_is_answered_once_in_order_by_its_deadline(
    events: list[tuple[object, ...]],
) -> None:
    sim = Simulation(BrokerCore(BrokerSettings(heartbeat_interval_s=100.0), now=0.0))
    sim.register(2)
    for event in events:
        sim.step(event)
    if not sim.running:
        sim.register(1)
    sim.drain()
    for request_id, (values, deadline) in sim.sent.items():
        reply = sim.answered[request_id]
        assert sim.answered_at[request_id] <= deadline + 1e-9
        if reply.error is not None:
            assert reply.error.kind in (
                ErrorKind.TIMEOUT,
                ErrorKind.QUEUE_FULL,
                ErrorKind.NOT_FOUND,
            )
            continue
        outcomes = reply_outcomes(reply)
        assert len(outcomes) == len(values)
        for value, outcome, got in zip(values, outcomes, first_values(reply), strict=True):
            if isinstance(outcome, Failure):
                assert outcome.kind is ErrorKind.WORKER_UNAVAILABLE
            else:
                assert got == value


@settings(max_examples=100, deadline=None)
@given(count=st.integers(1, QUEUE_LIMIT), capacity=st.integers(1, 4))
def test_jobs_stay_within_the_batch_size_and_keep_instance_order(count: int, capacity: int) -> None:
    sim = Simulation(BrokerCore(BrokerSettings(), now=0.0))
    sim.register(capacity)
    sim.step(("request", count, None))
    seen: list[float] = []
    while sim.running[b"w0"]:
        job = sim.running[b"w0"][0]
        assert count_rows(job.columns) <= SIZES[-1]
        seen.extend(job_values(job))
        sim.step(("complete", 0))
        sim.step(("advance", 10))
    assert seen == [100.0 + i for i in range(count)]
    (reply,) = sim.answered.values()
    assert first_values(reply) == seen
