"""The broker's accepted requests: their deadlines, their outcomes, their one reply each.

`RequestTable` is part of the sans-IO core: it reads no clock and sends nothing itself; every
reply goes to the `send` callable it was given (the core queues it for the frontend socket).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from msq.broker.catalog import describe
from msq.broker.deadlines import DeadlineHeap
from msq.broker.routes import PendingRequest
from msq.proto.columns import Outcomes
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Reply

log = logging.getLogger("msq.broker.core")

RequestKey = tuple[bytes, int]
"""A request by (gateway identity, the gateway's request id)."""


class RequestTable:
    """Every accepted request until its reply, and the count of refused ones by kind."""

    def __init__(self, send: Callable[[bytes, Reply], None]) -> None:
        self.pending: dict[RequestKey, PendingRequest] = {}
        #: Deadlines of accepted requests; answered ones leave lazily.
        self.deadlines: DeadlineHeap[RequestKey] = DeadlineHeap()
        self.rejected: dict[str, int] = {}
        self._send = send

    def accept(self, pending: PendingRequest) -> None:
        """Keep `pending` until it is answered or its deadline passes."""
        key = (pending.client, pending.request_id)
        self.pending[key] = pending
        self.deadlines.watch(pending.deadline.at, key, self.pending)

    def cancel(self, key: RequestKey) -> None:
        """The caller went away: forget the request without replying."""
        pending = self.pending.pop(key, None)
        if pending is not None and not pending.done:
            pending.done = True
            pending.route.forget(pending)

    def cancel_client(self, client: bytes) -> int:
        """A gateway link is gone: forget all its requests without replying; how many."""
        keys = [key for key in self.pending if key[0] == client]
        for key in keys:
            self.cancel(key)
        return len(keys)

    def reject(
        self, client: bytes, request_id: int, failure: Failure, version: int = 0, rid: str = ""
    ) -> None:
        """Refuse a request that was never accepted."""
        self.rejected[failure.kind.value] = self.rejected.get(failure.kind.value, 0) + 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request refused (%s): %s", failure.kind.value, failure.message,
                extra={"request_id": rid},
            )  # fmt: skip
        self._send(client, Reply(request_id, version, error=failure))

    def settle(self, pending: PendingRequest, start: int, outcomes: Outcomes) -> None:
        """Record the outcomes of the rows from `start` on; reply once the request is
        complete."""
        if pending.settle(start, outcomes):
            self.finish(pending)

    def finish(self, pending: PendingRequest) -> None:
        """Reply with every row's outcome, in order."""
        outcomes = pending.outcomes()
        reply = Reply(
            pending.request_id, pending.route.key.version, outcomes.columns, outcomes.failures
        )
        self._close(pending, reply)

    def fail(self, pending: PendingRequest, failure: Failure) -> None:
        """Reply with `failure` for the whole request."""
        if pending.remaining:
            pending.route.stats.instance_failed(failure.kind, pending.remaining)
        self._close(pending, Reply(pending.request_id, pending.route.key.version, error=failure))

    def fail_all(self, failure: Failure) -> None:
        """Fail every request in flight (the broker is going away)."""
        for pending in list(self.pending.values()):
            self.fail(pending, failure)

    def expire(self, now: float) -> None:
        """Fail the requests whose deadline has passed."""
        for key in self.deadlines.due(now):
            pending = self.pending.get(key)
            if pending is not None and pending.deadline.expired(now):
                waited_ms = -pending.deadline.remaining_s(now) * 1000.0
                failure = Failure(
                    ErrorKind.TIMEOUT,
                    f"request timed out: its deadline passed {waited_ms:.0f} ms ago before "
                    f"{describe(pending.route.key)} answered",
                )
                log.info("%s", failure.message, extra={"request_id": pending.rid})
                self.fail(pending, failure)

    def _close(self, pending: PendingRequest, reply: Reply) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "reply: %s", "done" if reply.error is None else "failed",
                extra={"request_id": pending.rid},
            )  # fmt: skip
        pending.done = True
        pending.route.forget(pending)
        self.pending.pop((pending.client, pending.request_id), None)
        self._send(pending.client, reply)
