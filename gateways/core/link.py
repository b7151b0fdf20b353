"""The gateways' async link to the broker: one DEALER, many concurrent requests.

Every coroutine of a gateway process shares one `BrokerLink`; replies are matched to callers by
a link-local number. Each request also carries its request id
(`msq.gateways.core.request_ids`), which the link's log lines name. Create the link inside the
running event loop of the process that uses it (for gunicorn: after the fork).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import cast

import zmq
import zmq.asyncio

from msq import tracing
from msq.gateways.core.request_ids import new_request_id
from msq.proto import transport
from msq.proto.curve import CurveClient
from msq.proto.deadline import DEFAULT_TIMEOUT_S, Deadline, DeadlineSource, resolve_deadline
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Cancel, Instance, Message, Reply, Request, Status, StatusQuery
from msq.proto.wire import WireError

log = logging.getLogger(__name__)

#: How long a call waits for the broker connection (at start-up or after a broker restart)
#: before it reports the broker unreachable.
CONNECT_GRACE_S = 2.0
#: Time the link waits past a request's deadline for the broker's own timeout reply.
DEADLINE_GRACE_S = 1.0


class BrokerLink:
    """Sends requests to the broker and awaits their replies."""

    def __init__(
        self,
        address: str = transport.DEFAULT_FRONTEND,
        *,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        max_message_bytes: int = transport.DEFAULT_MAX_MESSAGE_BYTES,
        curve: CurveClient | None = None,
    ) -> None:
        """`curve`: connect with CURVE (see `msq.proto.curve`); a broker that refuses the key
        looks unreachable (no connection ever completes)."""
        self.address = address
        self.default_timeout_s = default_timeout_s
        context = zmq.asyncio.Context.instance()
        self._socket = cast(
            zmq.asyncio.Socket,
            transport.dealer(
                context, address, immediate=True, max_message_bytes=max_message_bytes, curve=curve
            ),
        )
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def infer(
        self,
        servable: str,
        method: str,
        instances: list[Instance],
        *,
        version: int = 0,
        deadline: Deadline | None = None,
        timeout_s: float | None = None,
        rid: str = "",
    ) -> Reply:
        """Run `method` of `servable` on `instances`; remote failures come back in the Reply.

        The request must be answered by `deadline` (gateways make it with
        `msq.gateways.core.deadline.request_deadline`); callers without one may give
        `timeout_s`, and with neither the link's default applies. The broker is sent the time
        left; the link waits until the deadline (plus `DEADLINE_GRACE_S` for the broker's own
        timeout answer). If the awaiting task is cancelled, the broker is told to drop the request.
        `rid` is the request id (a new one when empty); failures are logged with it (timeouts,
        an unreachable broker and internal errors at WARNING, the others at DEBUG).
        """
        rid = rid or new_request_id()
        now = time.monotonic()
        if deadline is None:
            given = {DeadlineSource.REQUEST: timeout_s}
            deadline = resolve_deadline(given, now, self.default_timeout_s)
        request_id = next(self._ids)
        if deadline.expired(now):
            message = f"request timed out: its deadline ({deadline.describe()}) passed unsent"
            return _failed(
                rid, Reply(request_id, version, error=Failure(ErrorKind.TIMEOUT, message))
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request %d: %d instances for %s.%s version %d",
                request_id, len(instances), servable, method, version, extra={"request_id": rid},
            )  # fmt: skip
        request = Request(
            request_id, servable, method, instances, version, deadline.timeout_ms(now), rid,
            tracing.current_traceparent(),
        )  # fmt: skip
        wait_s = deadline.remaining_s(now) + DEADLINE_GRACE_S
        try:
            answer = await self._call(request_id, request, wait_s)
        except asyncio.CancelledError:
            log.debug("request %d cancelled by its caller", request_id, extra={"request_id": rid})
            await self._send_quietly(Cancel(request_id))
            raise
        if isinstance(answer, Failure):
            return _failed(rid, Reply(request_id, version, error=answer))
        if not isinstance(answer, Reply):
            failure = Failure(ErrorKind.INTERNAL, f"broker answered {type(answer).__name__}")
            return _failed(rid, Reply(request_id, version, error=failure))
        return answer if answer.error is None else _failed(rid, answer)

    async def status(self, *, timeout_s: float = 2.0) -> Status | None:
        """What the broker serves, and its statistics; None when it does not answer in time."""
        request_id = next(self._ids)
        answer = await self._call(request_id, StatusQuery(request_id), timeout_s)
        return answer if isinstance(answer, Status) else None

    def close(self) -> None:
        """Stop reading and close the socket; pending calls fail as unavailable."""
        self._reader.cancel()
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._socket.close(linger=0)

    async def _call(self, request_id: int, message: Message, wait_s: float) -> Message | Failure:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            if not await self._send(message, min(wait_s, CONNECT_GRACE_S)):
                return Failure(
                    ErrorKind.WORKER_UNAVAILABLE, f"broker at {self.address} is not reachable"
                )
            try:
                return await asyncio.wait_for(future, wait_s)
            except TimeoutError:
                return Failure(
                    ErrorKind.TIMEOUT,
                    f"request timed out: no answer from the broker at {self.address} "
                    f"within {wait_s:.1f} s",
                )
        finally:
            self._pending.pop(request_id, None)

    async def _send(self, message: Message, connect_wait_s: float) -> bool:
        """Send now, or as soon as the broker connection is up; False if it stays down."""
        frames = transport.frames_of(message)
        deadline = time.monotonic() + connect_wait_s
        while True:
            try:
                await self._socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                return True
            except zmq.Again:
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(0.01)

    async def _send_quietly(self, message: Message) -> None:
        with contextlib.suppress(zmq.ZMQError):
            await self._send(message, 0.0)

    async def _read(self) -> None:
        while True:
            frames = await self._socket.recv_multipart(copy=False)
            try:
                message = transport.message_of(frames)
            except WireError as exc:
                log.warning("dropping malformed message from the broker: %s", exc)
                continue
            request_id = getattr(message, "request_id", None)
            future = self._pending.get(request_id) if isinstance(request_id, int) else None
            if future is not None and not future.done():
                future.set_result(message)


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
