"""What a gateway link keeps about its brokers and its requests, without sockets or clocks.

`BrokerPeer` is one broker as the link sees it: live while it was heard within the liveness
time, and the incarnation its heartbeats carry (another one means it restarted). A restarted
broker is given a warm-up before it is sent requests, so that the workers of its previous
incarnation have registered with it again: requests sent at once would find no worker and fail
(`not_found`) instead of waiting a moment. `AttemptTable`
keeps every request (`Call`) until it is answered: each send of it is an *attempt* with a new
link-wide id, at one broker; a reply is taken only from the call's current attempt, so a call
is answered once and all its outcomes come from one attempt. When a broker is lost or
restarted, `orphan` takes back the calls whose attempt was there, for the link to send again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from msq.proto.deadline import Deadline
from msq.proto.messages import Request

Waiter = TypeVar("Waiter")


@dataclass(eq=False, slots=True)
class BrokerPeer:
    """One broker: its address, when it was last heard and the incarnation it reported."""

    address: str
    heard_at: float = -math.inf
    incarnation: str = ""
    #: Whether the broker counts as reachable (heard within the liveness time).
    live: bool = False
    #: Until when a restarted broker warms up (it is sent nothing before).
    warm_at: float = -math.inf
    #: When the link last sent it a heartbeat.
    pinged_at: float = -math.inf
    #: A send found no connection to it since its last heartbeat: it may have restarted, so it
    #: is sent nothing but heartbeats until one answers with its incarnation.
    unconfirmed: bool = False

    def heard(self, now: float, incarnation: str = "", warm_up_s: float = 0.0) -> bool:
        """The broker sent something (a heartbeat carries its incarnation); True when that
        incarnation differs from the one known: the broker restarted, and warms up for
        `warm_up_s` from now."""
        self.heard_at, self.live = now, True
        if not incarnation:
            return False
        self.unconfirmed = False
        if incarnation == self.incarnation:
            return False
        restarted = bool(self.incarnation)
        self.incarnation = incarnation
        if restarted:
            self.warm_at = now + warm_up_s
        return restarted

    def ready(self, now: float) -> bool:
        """Whether the broker may be sent requests now: live, confirmed and warm."""
        return self.live and not self.unconfirmed and now >= self.warm_at

    def unreachable(self) -> None:
        """A send found no connection to the broker: until its next heartbeat tells whether it
        restarted, it is sent no requests (a restarted one would refuse them: no workers yet)."""
        self.unconfirmed = True

    def ping_due(self, now: float, interval_s: float, retry_s: float) -> bool:
        """Whether to heartbeat the broker now: every `interval_s` while it is live and
        confirmed, every `retry_s` otherwise (to find it as soon as it is back)."""
        steady = self.live and not self.unconfirmed
        return now >= self.pinged_at + (interval_s if steady else retry_s)

    def check(self, now: float, liveness_s: float) -> bool:
        """True once, when a live broker has been silent for more than `liveness_s`."""
        if self.live and now - self.heard_at > liveness_s:
            self.live = False
            return True
        return False


@dataclass(eq=False, slots=True)
class Call(Generic[Waiter]):
    """A request kept until it is answered: the request as first made (its `request_id` is
    replaced by each attempt's), its deadline, who waits for it, and its current attempt."""

    request: Request
    deadline: Deadline
    waiter: Waiter
    #: When it last started waiting for a broker to take it.
    waiting_since: float
    attempt: int = 0
    #: Index of the broker holding the current attempt; None while no broker has it.
    broker: int | None = None
    attempts: int = 0


@dataclass(eq=False, slots=True)
class AttemptTable(Generic[Waiter]):
    """Every unanswered call and its current attempt; attempt ids are unique in the link."""

    brokers: int
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _by_attempt: dict[int, Call[Waiter]] = field(default_factory=dict)
    #: Every unanswered call, in the order they came (a dict as an ordered set).
    _calls: dict[Call[Waiter], None] = field(default_factory=dict)
    _in_flight: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self._in_flight = [0] * self.brokers

    def next_id(self) -> int:
        """A new id, for an attempt or anything else the link pairs with a reply."""
        return next(self._ids)

    def add(self, request: Request, deadline: Deadline, waiter: Waiter, now: float) -> Call[Waiter]:
        """Keep a new call; it waits for a broker until `attempt` places it."""
        call = Call(request, deadline, waiter, now)
        self._calls[call] = None
        return call

    def attempt(self, call: Call[Waiter], broker: int, now: float) -> Request:
        """Place the call's next attempt at `broker`: the request to send (a new id, the time
        left until the call's deadline). Any earlier attempt's reply will be ignored."""
        self._withdraw(call)
        call.attempt, call.broker = self.next_id(), broker
        call.attempts += 1
        self._by_attempt[call.attempt] = call
        self._in_flight[broker] += 1
        timeout_ms = call.deadline.timeout_ms(now)
        return replace(call.request, request_id=call.attempt, timeout_ms=timeout_ms)

    def unplaced(self, call: Call[Waiter]) -> None:
        """The broker did not take the call's attempt: the call goes on waiting for one."""
        self._withdraw(call)

    def answered(self, attempt: int) -> Call[Waiter] | None:
        """The call whose current attempt `attempt` is, now answered and forgotten; None for
        an attempt that is not current (a reply from an abandoned attempt, or unknown)."""
        call = self._by_attempt.get(attempt)
        if call is not None:
            self.remove(call)
        return call

    def orphan(self, broker: int, now: float) -> list[Call[Waiter]]:
        """`broker` was lost or restarted: its calls, now waiting for a broker, oldest first."""
        calls = sorted(
            (call for call in self._by_attempt.values() if call.broker == broker),
            key=lambda call: call.attempt,
        )
        for call in calls:
            self._withdraw(call)
            call.waiting_since = now
        return calls

    def remove(self, call: Call[Waiter]) -> None:
        """Forget a call (answered, given up, or its caller went away)."""
        self._withdraw(call)
        self._calls.pop(call, None)

    def waiting(self) -> list[Call[Waiter]]:
        """The calls no broker holds now, longest waiting first (ties: oldest first)."""
        return sorted(
            (call for call in self._calls if call.broker is None),
            key=lambda call: call.waiting_since,
        )

    def in_flight(self) -> list[int]:
        """Attempts held by each broker, by index."""
        return list(self._in_flight)

    def calls(self) -> list[Call[Waiter]]:
        """Every unanswered call."""
        return list(self._calls)

    def _withdraw(self, call: Call[Waiter]) -> None:
        if call.broker is not None:
            del self._by_attempt[call.attempt]
            self._in_flight[call.broker] -= 1
            call.broker = None


def brokers_by_preference(
    peers: Sequence[BrokerPeer], in_flight: Sequence[int], now: float
) -> list[int]:
    """The ready brokers, least in flight first (ties: in the order given)."""
    return sorted(
        (index for index, peer in enumerate(peers) if peer.ready(now)),
        key=lambda index: in_flight[index],
    )
