"""Per-method queues of pending rows (a request's instances, moved as row ranges of its
columns); `msq.proto.batching` decides when they become jobs."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from msq.broker.stats import RouteStats
from msq.proto.batching import BatchPolicy
from msq.proto.columns import Outcomes, take_rows
from msq.proto.deadline import Deadline
from msq.proto.messages import Columns, MethodSignature


class RouteKey(NamedTuple):
    """What a request is routed by: servable, resolved version, method."""

    servable: str
    version: int
    method: str


@dataclass(eq=False, slots=True)
class PendingRequest:
    """An accepted request waiting for the outcomes of its `count` rows (instances).

    `columns` are the request's columns (reduced to the declared inputs; those that failed
    admission as sent, never sliced); `pieces` the outcomes of settled row ranges by their
    first row, `remaining` how many rows have none yet.
    """

    client: bytes
    request_id: int
    route: Route
    columns: list[Columns]
    count: int
    deadline: Deadline
    pieces: dict[int, Outcomes] = field(default_factory=dict)
    remaining: int = field(init=False)
    done: bool = False
    #: How many of its rows wait in the route queue.
    queued: int = 0
    #: The request id its log lines name (`Request.rid`), and its `Request.traceparent`.
    rid: str = ""
    traceparent: str = ""

    def __post_init__(self) -> None:
        self.remaining = self.count

    def settle(self, start: int, outcomes: Outcomes) -> bool:
        """Record the outcomes of rows [start, start + outcomes.count) (the first answer for
        them counts); True once they complete the request."""
        if self.done or start in self.pieces:
            return False
        self.pieces[start] = outcomes
        self.remaining -= outcomes.count
        stats = self.route.stats
        for failure in outcomes.failures:
            stats.instance_failed(failure.failure.kind)
        stats.instances_succeeded += outcomes.count - len(outcomes.failures)
        return self.remaining == 0

    def outcomes(self) -> Outcomes:
        """The outcomes of every row, in order (once all are settled)."""
        pieces = self.pieces
        if len(pieces) == 1:
            (whole,) = pieces.values()
            return whole
        return Outcomes.join(pieces[start] for start in sorted(pieces))


@dataclass(eq=False, slots=True)
class QueuedRows:
    """Rows [start, stop) of a request, waiting in a route queue or running in a job."""

    request: PendingRequest
    start: int
    stop: int
    enqueued_at: float
    attempts: int = 0
    #: They arrived while their method was idle (nothing queued or running): no need to wait.
    eager: bool = False

    @property
    def count(self) -> int:
        """How many rows (instances)."""
        return self.stop - self.start

    def columns(self) -> list[Columns]:
        """The rows' columns: views of the request's buffers."""
        return take_rows(self.request.columns, self.start, self.stop)

    def cut(self, count: int) -> QueuedRows:
        """Split off and return the first `count` rows (these keep the rest)."""
        head = QueuedRows(
            self.request, self.start, self.start + count, self.enqueued_at, self.attempts,
            self.eager,
        )  # fmt: skip
        self.start += count
        return head


@dataclass(eq=False, slots=True)
class Route:
    """Everything the broker keeps for one (servable, version, method).

    The queue holds row ranges of requests (`QueuedRows`); those of finished requests are
    removed lazily: `live` counts the queued rows whose request is still waiting.
    """

    key: RouteKey
    signature: MethodSignature
    policy: BatchPolicy
    stats: RouteStats
    workers: set[bytes] = field(default_factory=set)
    #: Workers among `workers` that drain: they finish what they hold and get nothing new
    #: while another worker serves the route.
    draining: set[bytes] = field(default_factory=set)
    queue: deque[QueuedRows] = field(default_factory=deque)
    live: int = 0
    in_flight: int = 0

    def push(self, item: QueuedRows, *, front: bool = False) -> None:
        """Queue rows at the back (or at the front: a lost worker's rows go first)."""
        if front:
            self.queue.appendleft(item)
        else:
            self.queue.append(item)
        self.live += item.count
        item.request.queued += item.count

    def forget(self, request: PendingRequest) -> None:
        """Stop counting a finished request's queued rows (they are skipped later)."""
        self.live -= request.queued
        request.queued = 0

    def oldest(self) -> QueuedRows | None:
        """The oldest live rows, dropping finished requests' rows from the front."""
        queue = self.queue
        while queue and queue[0].request.done:
            queue.popleft()
        return queue[0] if queue else None

    @property
    def effective_signature(self) -> MethodSignature:
        """The announced signature with the batching policy in force."""
        signature = self.signature
        return MethodSignature(signature.name, signature.inputs, signature.outputs, self.policy)

    @property
    def accepting(self) -> bool:
        """Some worker of this route does not drain: new requests may be routed here."""
        return len(self.draining) < len(self.workers)

    @property
    def idle(self) -> bool:
        """Nothing is queued or running for this method."""
        return self.live == 0 and self.in_flight == 0

    def job_size(self, now: float) -> int:
        """How many rows (instances) to dispatch now, as the batching policy decides (0: none)."""
        oldest = self.oldest()
        if oldest is None:
            return 0
        return self.policy.job_size(
            live=self.live,
            in_flight=self.in_flight,
            oldest_at=oldest.enqueued_at,
            oldest_eager=oldest.eager,
            now=now,
        )

    def window_closes_at(self) -> float | None:
        """When the queue's partial batch goes anyway (None: nothing is queued)."""
        oldest = self.oldest()
        return None if oldest is None else self.policy.window_closes_at(oldest.enqueued_at)

    def take(self, count: int) -> list[QueuedRows]:
        """Pop `count` live rows from the front of the queue (the last range taken may be
        split: its other rows stay in front)."""
        taken: list[QueuedRows] = []
        queue = self.queue
        needed = count
        while needed:
            item = queue[0]
            if item.request.done:
                queue.popleft()
                continue
            if item.count > needed:
                item = item.cut(needed)
            else:
                queue.popleft()
            item.request.queued -= item.count
            needed -= item.count
            taken.append(item)
        self.live -= count
        return taken

    def drain(self) -> list[QueuedRows]:
        """Pop every live row."""
        return self.take(self.live)
