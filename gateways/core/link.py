"""The gateways' async link to the brokers: one DEALER per broker, many concurrent requests.

Every coroutine of a gateway process shares one `BrokerLink`. It heartbeats each broker every
`HEARTBEAT_S` (the broker answers each with its own, carrying its incarnation) and counts a
broker silent for `LIVENESS_S` as lost. It keeps every request until it is answered
(`msq.gateways.core.attempts`): a request goes to the live broker with the fewest requests in
flight; when that broker is lost, or answers with another incarnation (it restarted), the
request is sent again, whole and under a new attempt id, to a live broker, until its deadline
(a restarted broker first gets `WARM_UP_S` for its workers to register with it again; a broker
a send found unconnected is sent only heartbeats until one answers, so that its restart is known
before any request reaches it).
Replies of abandoned attempts are ignored, so the caller gets exactly one answer. Each request
also carries its request id (`msq.gateways.core.request_ids`), which the link's log lines name.
The link reads its plain ZeroMQ sockets on the event loop itself: a reader on each socket's file
descriptor takes every queued message per wake-up and answers its waiter directly (no task,
future or `zmq.asyncio` wrapper per message).
Create the link inside the running event loop of the process that uses it (for gunicorn: after
the fork).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import zmq

from msq import tracing
from msq.gateways.core.attempts import AttemptTable, BrokerPeer, Call, brokers_by_preference
from msq.gateways.core.request_ids import new_request_id
from msq.proto import transport
from msq.proto.columns import Outcomes, count_rows
from msq.proto.curve import CurveClient
from msq.proto.deadline import DEFAULT_TIMEOUT_S, Deadline, DeadlineSource, resolve_deadline
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    Cancel,
    Columns,
    Disconnect,
    Heartbeat,
    Message,
    Reply,
    RepositoryAnswer,
    RepositoryCommand,
    Request,
    Status,
    StatusQuery,
)
from msq.proto.wire import WireError

log = logging.getLogger(__name__)

#: Seconds between two heartbeats to a live broker.
HEARTBEAT_S = 0.5
#: A broker silent for this long is lost: its requests go to another (or its next incarnation).
LIVENESS_S = 1.5
#: A restarted broker's warm-up: the time its workers take to register with it again (their
#: heartbeats are 1 s apart, and the broker's first one answers them "register again").
WARM_UP_S = 2.5
#: Messages read from one broker per wake-up before the event loop gets its turn again.
READ_BATCH = 256
#: Seconds between two tries to reach a broker that is not live (and to place waiting requests).
RETRY_S = 0.05
#: Longest time a request waits for a reachable broker before it fails as unavailable.
BROKER_WAIT_S = 10.0
#: Time the link waits past a request's deadline for the broker's own timeout reply.
DEADLINE_GRACE_S = 1.0

Answer = Message | Failure


class BrokerLink:
    """Sends requests to the brokers and awaits their replies."""

    def __init__(
        self,
        address: str | Sequence[str] = transport.DEFAULT_FRONTEND,
        *,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        max_message_bytes: int = transport.DEFAULT_MAX_MESSAGE_BYTES,
        curve: CurveClient | None = None,
    ) -> None:
        """`address`: one broker's frontend endpoint, or several (a sequence, or a
        comma-separated string); `curve`: connect with CURVE (see `msq.proto.curve`), a broker
        that refuses the key looks unreachable (no connection ever completes)."""
        addresses = transport.endpoints(address)
        self.address = ",".join(addresses)
        self.default_timeout_s = default_timeout_s
        #: Requests sent again after their broker was lost or restarted.
        self.resubmitted = 0
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._peers = [BrokerPeer(address) for address in addresses]
        self._sockets: list[zmq.Socket[bytes]] = [
            transport.dealer(
                context, address, immediate=True, max_message_bytes=max_message_bytes, curve=curve
            )
            for address in addresses
        ]
        self._calls: AttemptTable[asyncio.Future[Answer]] = AttemptTable(len(addresses))
        self._queries: dict[int, asyncio.Future[Answer]] = {}
        self._loop = asyncio.get_running_loop()
        #: Sockets whose read is already scheduled on the loop (see `_send_now`).
        self._read_due: set[int] = set()
        for index, sock in enumerate(self._sockets):
            self._loop.add_reader(sock.FD, self._read, index)
        self._tasks = [self._loop.create_task(self._pulse())]

    @property
    def live(self) -> list[str]:
        """The addresses of the brokers that count as reachable now."""
        return [peer.address for peer in self._peers if peer.live]

    @property
    def in_flight(self) -> dict[str, int]:
        """Requests each broker holds now (sent, not yet answered), by address."""
        counts = self._calls.in_flight()
        return {peer.address: count for peer, count in zip(self._peers, counts, strict=True)}

    async def infer(
        self,
        servable: str,
        method: str,
        columns: list[Columns],
        *,
        version: int = 0,
        deadline: Deadline | None = None,
        timeout_s: float | None = None,
        rid: str = "",
    ) -> Reply:
        """Run `method` of `servable` on the instances (rows) of `columns`
        (`msq.proto.columns.stack` makes them); remote failures come back in the Reply.

        The request must be answered by `deadline` (gateways make it with
        `msq.gateways.core.deadline.request_deadline`); callers without one may give
        `timeout_s`, and with neither the link's default applies. The broker is sent the time
        left; the link waits until the deadline (plus `DEADLINE_GRACE_S` for the broker's own
        timeout answer), sending the request again if its broker is lost. If the awaiting task
        is cancelled, the broker is told to drop the request. `rid` is the request id (a new
        one when empty); failures are logged with it (timeouts, an unreachable broker and
        internal errors at WARNING, the others at DEBUG). A reply whose outcomes do not fit
        the request (rows missing or malformed) is answered as an INTERNAL failure of the
        whole request, so callers may pair its rows with the request's (`Outcomes.rows`).
        """
        rid = rid or new_request_id()
        now = time.monotonic()
        if deadline is None:
            given = {DeadlineSource.REQUEST: timeout_s}
            deadline = resolve_deadline(given, now, self.default_timeout_s)
        if deadline.expired(now):
            message = f"request timed out: its deadline ({deadline.describe()}) passed unsent"
            return _failed(rid, Reply(0, version, error=Failure(ErrorKind.TIMEOUT, message)))
        count = count_rows(columns)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request: %d instances for %s.%s version %d",
                count, servable, method, version, extra={"request_id": rid},
            )  # fmt: skip
        request = Request(
            0, servable, method, columns, version, None, rid, tracing.current_traceparent()
        )
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        call = self._calls.add(request, deadline, future, now)
        self._place(call, now)
        wait_s = deadline.remaining_s(now) + DEADLINE_GRACE_S
        try:
            answer = await _within(future, wait_s)
        except TimeoutError:
            answer = Failure(
                ErrorKind.TIMEOUT,
                f"request timed out: no answer from the broker within {wait_s:.1f} s",
            )
        except asyncio.CancelledError:
            log.debug("request cancelled by its caller", extra={"request_id": rid})
            if call.broker is not None:
                self._send_now(call.broker, Cancel(call.attempt))
            raise
        finally:
            self._calls.remove(call)
        if isinstance(answer, Failure):
            return _failed(rid, Reply(call.attempt, version, error=answer))
        if not isinstance(answer, Reply):
            failure = Failure(ErrorKind.INTERNAL, f"broker answered {type(answer).__name__}")
            return _failed(rid, Reply(call.attempt, version, error=failure))
        if answer.error is not None:
            return _failed(rid, answer)
        problem = Outcomes(answer.columns, answer.failures, count).problem()
        if problem is not None:
            failure = Failure(ErrorKind.INTERNAL, f"the broker's reply does not fit: {problem}")
            return _failed(rid, Reply(call.attempt, answer.version, error=failure))
        return answer

    async def status(self, *, timeout_s: float = BROKER_WAIT_S) -> Status | None:
        """What the brokers serve, and their statistics: the first answer of the ready brokers,
        or None when none answers within `timeout_s`. Like a request, the query waits for a
        ready broker; it is sent to every ready one, again every `HEARTBEAT_S` while
        unanswered, so a broker that dies before answering costs nothing."""
        request_id = self._calls.next_id()
        answer = await self._ask(request_id, StatusQuery(request_id), timeout_s, every=True)
        return answer if isinstance(answer, Status) else None

    async def repository(
        self, action: str, model: str = "", *, timeout_s: float
    ) -> RepositoryAnswer:
        """A V2 repository command (`index`, `load`, `unload`), sent once to one ready broker,
        which relays it to the model controller; no answer in time is the answer's `error`."""
        request_id = self._calls.next_id()
        command = RepositoryCommand(request_id, action, model)
        answer = await self._ask(request_id, command, timeout_s, every=False)
        if answer is None:
            failure = Failure(
                ErrorKind.TIMEOUT,
                f"no answer to {action} from the brokers at {self.address} within {timeout_s} s",
            )
            return RepositoryAnswer(request_id, error=failure)
        if not isinstance(answer, RepositoryAnswer):
            failure = Failure(ErrorKind.INTERNAL, f"broker answered {type(answer).__name__}")
            return RepositoryAnswer(request_id, error=failure)
        return answer

    async def _ask(
        self, request_id: int, message: Message, timeout_s: float, *, every: bool
    ) -> Message | None:
        """`message`'s answer, None when none comes within `timeout_s`. It waits for a ready
        broker, then goes to every ready broker again every `HEARTBEAT_S` while unanswered
        (`every`: a query), or once to one (a command)."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queries[request_id] = future
        give_up = time.monotonic() + timeout_s
        sent = False
        try:
            while (left_s := give_up - time.monotonic()) > 0:
                if every or not sent:
                    sent = self._send_to_ready(message, every=every) > 0
                again_s = left_s if sent and not every else HEARTBEAT_S if sent else RETRY_S
                done, _ = await asyncio.wait([future], timeout=min(again_s, left_s))
                if done:
                    answer = future.result()
                    return None if isinstance(answer, Failure) else answer
            return None
        finally:
            self._queries.pop(request_id, None)

    def close(self) -> None:
        """Stop reading and close the sockets; pending calls fail as unavailable."""
        for task in self._tasks:
            task.cancel()
        for call in self._calls.calls():
            call.waiter.cancel()
        for future in self._queries.values():
            future.cancel()
        self._queries.clear()
        for sock in self._sockets:
            if not sock.closed:
                self._loop.remove_reader(sock.FD)
                sock.close(linger=0)

    # ------------------------------------------------------------------ placing requests

    def _place(self, call: Call[asyncio.Future[Answer]], now: float) -> bool:
        """Send the call's next attempt to the best live broker that takes it; False (the call
        waits for one) when none does."""
        for index in brokers_by_preference(self._peers, self._calls.in_flight(), now):
            request = self._calls.attempt(call, index, now)
            if self._send_now(index, request):
                return True
        self._calls.unplaced(call)
        return False

    def _resubmit(self, index: int, why: str, now: float) -> None:
        """Broker `index` was lost or restarted: send its requests again elsewhere."""
        calls = self._calls.orphan(index, now)
        if not calls:
            return
        log.warning(
            "broker %s %s: resubmitting %d requests", self._peers[index].address, why, len(calls)
        )
        self.resubmitted += len(calls)
        self._place_waiting(now)

    def _place_waiting(self, now: float) -> None:
        """Place the waiting calls; fail those past their deadline or waiting too long."""
        for call in self._calls.waiting():
            if call.waiter.done():
                continue
            if call.deadline.expired(now):
                message = f"request timed out: its deadline ({call.deadline.describe()}) passed"
                call.waiter.set_result(Failure(ErrorKind.TIMEOUT, f"{message} unanswered"))
            elif now - call.waiting_since > BROKER_WAIT_S:
                call.waiter.set_result(
                    Failure(
                        ErrorKind.WORKER_UNAVAILABLE,
                        f"no broker reachable at {self.address} for {BROKER_WAIT_S:.0f} s",
                    )
                )
            elif not self._place(call, now):
                return  # no broker takes anything now: the others wait too

    # ------------------------------------------------------------------ sockets

    def _send_now(self, index: int, message: Message) -> bool:
        """Send without waiting; False when broker `index` is not connected (it then takes no
        requests until it answers a heartbeat: `BrokerPeer.unreachable`).

        A send lets libzmq take in what arrived meanwhile and reset the socket's file
        descriptor (edge-triggered), so replies already queued are read on the loop's next turn.
        """
        sock = self._sockets[index]
        if sock.closed:  # the link was closed under a caller (its Cancel goes nowhere)
            return False
        try:
            sock.send_multipart(transport.frames_of(message), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self._peers[index].unreachable()
            return False
        finally:
            if index not in self._read_due and transport.readable(sock):
                self._read_due.add(index)
                self._loop.call_soon(self._read, index)
        return True

    def _send_to_ready(self, message: Message, *, every: bool) -> int:
        """Send to every ready broker (or to the first that takes it); to how many."""
        now = time.monotonic()
        ready = [index for index, peer in enumerate(self._peers) if peer.ready(now)]
        if every:
            return sum(self._send_now(index, message) for index in ready)
        return int(any(self._send_now(index, message) for index in ready))

    async def _pulse(self) -> None:
        """Heartbeat the brokers, notice lost ones, and place the requests that wait."""
        while True:
            now = time.monotonic()
            for index, peer in enumerate(self._peers):
                if peer.check(now, LIVENESS_S):
                    self._resubmit(index, f"silent for {LIVENESS_S} s", now)
                if peer.ping_due(now, HEARTBEAT_S, RETRY_S) and self._send_now(index, Heartbeat()):
                    peer.pinged_at = now
            self._place_waiting(now)
            await asyncio.sleep(RETRY_S)

    def _read(self, index: int) -> None:
        """Take what broker `index` sent (the loop calls this when its socket is readable):
        every queued message, up to `READ_BATCH` before the loop gets its turn again."""
        self._read_due.discard(index)
        sock = self._sockets[index]
        if sock.closed:
            return
        for _ in range(READ_BATCH):
            if not transport.readable(sock):
                return
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            try:
                self._take(index, frames)
            except Exception:  # a bug must cost one message, never the link
                log.exception(
                    "failed to handle a message from broker %s", self._peers[index].address
                )
        self._read_due.add(index)
        self._loop.call_soon(self._read, index)

    def _take(self, index: int, frames: list[zmq.Frame]) -> None:
        """Handle one message from broker `index`: heartbeats and departures update the peer,
        answers go to whoever waits for them."""
        peer = self._peers[index]
        now = time.monotonic()
        try:
            message = transport.message_of(frames)
        except WireError as exc:
            log.warning("dropping malformed message from broker %s: %s", peer.address, exc)
            return
        if isinstance(message, Disconnect):  # the broker is shutting down
            peer.live = False
            self._resubmit(index, f"is leaving ({message.reason})", now)
            return
        if isinstance(message, Heartbeat):
            was_live = peer.live
            if peer.heard(now, message.incarnation, WARM_UP_S):
                self._resubmit(index, f"restarted (incarnation {message.incarnation})", now)
            if not was_live:
                log.info("broker %s is reachable", peer.address)
                self._place_waiting(now)
            return
        peer.heard(now)
        request_id = getattr(message, "request_id", None)
        if not isinstance(request_id, int):
            return
        future = self._queries.get(request_id)
        call = self._calls.answered(request_id) if future is None else None
        if call is not None:
            future = call.waiter
        if future is not None and not future.done():
            future.set_result(message)


async def _within(future: asyncio.Future[Answer], timeout_s: float) -> Answer:
    """`future`'s result, or TimeoutError after `timeout_s` (the future then holds it).

    Cheaper than `asyncio.wait_for`, which wraps the future in a second one and so takes two
    turns of the loop per answer; cancelling the awaiting task cancels `future` all the same.
    """
    expiry = asyncio.get_running_loop().call_later(timeout_s, _expire, future)
    try:
        return await future
    finally:
        expiry.cancel()


def _expire(future: asyncio.Future[Answer]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


#: Failures the link logs at WARNING (the others are the client's or load's: DEBUG).
_WARN = frozenset({ErrorKind.TIMEOUT, ErrorKind.WORKER_UNAVAILABLE, ErrorKind.INTERNAL})


def _failed(rid: str, reply: Reply) -> Reply:
    """Log a reply whose whole request failed, with its request id; return it."""
    error = reply.error
    assert error is not None
    level = logging.WARNING if error.kind in _WARN else logging.DEBUG
    if log.isEnabledFor(level):
        log.log(
            level, "request %d failed (%s): %s", reply.request_id, error.kind.value,
            error.message, extra={"request_id": rid},
        )  # fmt: skip
    return reply
