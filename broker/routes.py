"""Per-method queues of pending instances; `msq.proto.batching` decides when they become jobs."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from msq.broker.stats import RouteStats
from msq.proto.batching import BatchPolicy
from msq.proto.deadline import Deadline
from msq.proto.errors import Failure
from msq.proto.messages import Instance, InstanceOutcome, MethodSignature


class RouteKey(NamedTuple):
    """What a request is routed by: servable, resolved version, method."""

    servable: str
    version: int
    method: str


@dataclass(eq=False, slots=True)
class PendingRequest:
    """An accepted request waiting for its instances' outcomes."""

    client: bytes
    request_id: int
    route: Route
    outcomes: list[InstanceOutcome | None]
    remaining: int
    deadline: Deadline
    done: bool = False
    queued: int = 0
    #: The request id its log lines name (`Request.rid`), and its `Request.traceparent`.
    rid: str = ""
    traceparent: str = ""

    def settle(self, index: int, outcome: InstanceOutcome) -> bool:
        """Record instance `index`'s outcome (the first one counts); True once it completes
        the request."""
        if self.done or self.outcomes[index] is not None:
            return False
        self.outcomes[index] = outcome
        self.remaining -= 1
        if isinstance(outcome, Failure):
            self.route.stats.instance_failed(outcome.kind)
        else:
            self.route.stats.instances_succeeded += 1
        return self.remaining == 0


@dataclass(eq=False, slots=True)
class QueuedInstance:
    """One instance of a request, waiting in a route queue or running in a job."""

    request: PendingRequest
    index: int
    payload: Instance
    enqueued_at: float
    attempts: int = 0
    #: It arrived while its method was idle (nothing queued or running): it need not wait.
    eager: bool = False


@dataclass(eq=False, slots=True)
class Route:
    """Everything the broker keeps for one (servable, version, method).

    Instances of finished requests are removed lazily: `live` counts the queued instances
    whose request is still waiting.
    """

    key: RouteKey
    signature: MethodSignature
    policy: BatchPolicy
    stats: RouteStats
    workers: set[bytes] = field(default_factory=set)
    #: Workers among `workers` that drain: they finish what they hold and get nothing new
    #: while another worker serves the route.
    draining: set[bytes] = field(default_factory=set)
    queue: deque[QueuedInstance] = field(default_factory=deque)
    live: int = 0
    in_flight: int = 0

    def push(self, item: QueuedInstance, *, front: bool = False) -> None:
        if front:
            self.queue.appendleft(item)
        else:
            self.queue.append(item)
        self.live += 1
        item.request.queued += 1

    def forget(self, request: PendingRequest) -> None:
        """Stop counting a finished request's queued instances (they are skipped later)."""
        self.live -= request.queued
        request.queued = 0

    def oldest(self) -> QueuedInstance | None:
        """The oldest live instance, dropping finished requests' instances from the front."""
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
        """How many instances to dispatch now, as the batching policy decides (0: none)."""
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

    def take(self, count: int) -> list[QueuedInstance]:
        """Pop `count` live instances from the front of the queue."""
        taken: list[QueuedInstance] = []
        queue = self.queue
        while len(taken) < count:
            item = queue.popleft()
            if item.request.done:
                continue
            item.request.queued -= 1
            taken.append(item)
        self.live -= count
        return taken

    def drain(self) -> list[QueuedInstance]:
        """Pop every live instance."""
        return self.take(self.live)
