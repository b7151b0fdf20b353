"""The broker link against stand-in brokers on inproc ROUTERs: the deadline rule (the Request
carries the time left, the link waits until the same deadline plus its grace, a deadline that
has already passed is answered without sending anything), columns sent as given and replies
checked against their rows, and failover (a lost or restarted broker's requests are sent again,
once, and only the current attempt's reply counts)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
import zmq
import zmq.asyncio

from msq.gateways.core.link import (
    DEADLINE_GRACE_S,
    HEARTBEAT_S,
    LIVENESS_S,
    READ_BATCH,
    BrokerLink,
)
from msq.proto import transport
from msq.proto.codec import WireTensor
from msq.proto.deadline import Deadline, DeadlineSource
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    Columns,
    Disconnect,
    Heartbeat,
    Message,
    Reply,
    Request,
    RowFailure,
)

_ADDRESSES = itertools.count()


class StandIn:
    """A ROUTER that stands in for a broker: it answers heartbeats with its incarnation (as a
    broker does) and queues everything else for the test."""

    def __init__(self, address: str, incarnation: str = "standin") -> None:
        # inproc: the link's own (plain) context, seen through asyncio.
        context = zmq.asyncio.Context(zmq.Context.instance())
        self.address = address
        self.incarnation = incarnation
        self.socket: zmq.asyncio.Socket = transport.router(context, address)  # type: ignore[assignment]
        self.messages: asyncio.Queue[tuple[bytes, Message]] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            peer, *frames = await self.socket.recv_multipart(copy=False)
            message = transport.message_of(frames)
            if isinstance(message, Heartbeat):
                answer = transport.frames_of(Heartbeat(self.incarnation), peer=peer.bytes)
                await self.socket.send_multipart(answer)
            else:
                await self.messages.put((peer.bytes, message))

    async def request(self) -> tuple[bytes, Request]:
        """The next request the stand-in gets, and its sender."""
        peer, message = await asyncio.wait_for(self.messages.get(), 5.0)
        assert isinstance(message, Request), message
        return peer, message

    async def reply(self, peer: bytes, reply: Reply) -> None:
        await self.socket.send_multipart(transport.frames_of(reply, peer=peer))

    def silence(self) -> None:
        """Stop reading and answering, as a hung or unreachable broker does."""
        self._reader.cancel()

    def close(self) -> None:
        self._reader.cancel()
        self.socket.close(linger=0)


def with_broker(
    use: Callable[[BrokerLink, StandIn], Awaitable[None]], *, timeout_s: float = 0.2
) -> None:
    """Run `use` on a link (default timeout `timeout_s`) connected to a stand-in broker."""

    async def scenario() -> None:
        broker = StandIn(f"inproc://msq-test-link-{next(_ADDRESSES)}")
        link = BrokerLink(broker.address, default_timeout_s=timeout_s)
        try:
            await use(link, broker)
        finally:
            link.close()
            broker.close()

    asyncio.run(scenario())


def test_the_request_carries_the_time_left_and_the_link_waits_until_the_deadline() -> None:
    async def use(link: BrokerLink, broker: StandIn) -> None:
        started = time.monotonic()
        deadline = Deadline.after(0.3, DeadlineSource.TIMEOUT_HEADER, started)
        call = asyncio.ensure_future(link.infer("slow", "nap", [], deadline=deadline))
        _, request = await broker.request()
        assert request.timeout_ms is not None and 150 < request.timeout_ms <= 300
        reply = await call  # the stand-in broker never answers
        took = time.monotonic() - started
        assert 0.3 + DEADLINE_GRACE_S - 0.05 < took < 0.3 + DEADLINE_GRACE_S + 0.5
        assert reply.error is not None and reply.error.kind is ErrorKind.TIMEOUT

    with_broker(use)


def test_without_a_deadline_the_links_default_applies() -> None:
    async def use(link: BrokerLink, broker: StandIn) -> None:
        call = asyncio.ensure_future(link.infer("add", "add_common", []))
        peer, request = await broker.request()
        assert request.timeout_ms is not None and 100 < request.timeout_ms <= 200 + 1e-6
        await broker.reply(peer, Reply(request.request_id, 3))
        assert await call == Reply(request.request_id, 3)

    with_broker(use)


def test_columns_travel_as_given_and_replies_must_fit_their_rows() -> None:
    columns = [Columns(2, {"x": WireTensor("int8", (2, 1), b"\x01\x02")})]
    fitting = [Columns(1, {"y": WireTensor("int8", (1,), b"\x03")})]
    failed = [RowFailure(0, Failure(ErrorKind.MODEL_ERROR, "boom"))]

    async def use(link: BrokerLink, broker: StandIn) -> None:
        call = asyncio.ensure_future(link.infer("add", "add_common", columns))
        peer, request = await broker.request()
        ((count, tensors),) = [(part.count, part.tensors) for part in request.columns]
        assert (count, tensors["x"].shape, bytes(tensors["x"].data)) == (2, (2, 1), b"\x01\x02")
        await broker.reply(peer, Reply(request.request_id, 1, fitting, failed))
        answer = await call
        assert (answer.error, answer.failures, answer.columns[0].count) == (None, failed, 1)
        call = asyncio.ensure_future(link.infer("add", "add_common", columns))
        peer, request = await broker.request()
        await broker.reply(peer, Reply(request.request_id, 1, fitting))  # a row short
        assert (await call).error == Failure(
            ErrorKind.INTERNAL,
            "the broker's reply does not fit: 1 output rows for 2 successful instances",
        )

    with_broker(use)


def test_a_passed_deadline_is_answered_without_sending() -> None:
    async def use(link: BrokerLink, broker: StandIn) -> None:
        passed = Deadline.after(0.5, DeadlineSource.GRPC_DEADLINE, time.monotonic() - 1.0)
        reply = await link.infer("add", "add_common", [], deadline=passed)
        assert reply.error is not None
        assert (reply.error.kind, reply.error.message) == (
            ErrorKind.TIMEOUT,
            "request timed out: its deadline (500 ms from the gRPC deadline) passed unsent",
        )
        await asyncio.sleep(0.1)
        assert broker.messages.empty()

    with_broker(use)


def test_a_burst_of_replies_beyond_one_read_answers_every_call_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """More replies than one wake-up reads, queued at once in reverse order with a malformed
    message and a stale reply among them: each call gets its own reply, the rest is dropped.
    The stand-in stops answering heartbeats first, so nothing wakes the link's reader but the
    replies (and its own heartbeat sends, every HEARTBEAT_S: the bound of the wait)."""
    count = 2 * READ_BATCH + 3

    async def use(link: BrokerLink, broker: StandIn) -> None:
        calls = [asyncio.ensure_future(link.infer("add", "add_common", [])) for _ in range(count)]
        got = [await broker.request() for _ in range(count)]
        broker.silence()
        peer = got[0][0]
        await broker.socket.send_multipart([peer, b"not a message"])
        await broker.reply(peer, Reply(10**9, 5))  # no call has this id
        for _, request in reversed(got):
            await broker.reply(peer, Reply(request.request_id, request.request_id % 7))
        replies = await asyncio.wait_for(asyncio.gather(*calls), HEARTBEAT_S)
        assert sorted(reply.request_id for reply in replies) == sorted(r.request_id for _, r in got)
        assert all(reply.version == reply.request_id % 7 for reply in replies)
        assert (link.in_flight, link.resubmitted) == ({broker.address: 0}, 0)

    with caplog.at_level(logging.WARNING, logger="msq.gateways.core.link"):
        with_broker(use, timeout_s=30.0)
    dropped = [record.message for record in caplog.records]
    assert len(dropped) == 1 and dropped[0].startswith("dropping malformed message from broker")


def with_brokers(use: Callable[[BrokerLink, StandIn, StandIn], Awaitable[None]]) -> None:
    """Run `use` on a link to two stand-in brokers, once both are live."""

    async def scenario() -> None:
        a, b = (StandIn(f"inproc://msq-test-link-{next(_ADDRESSES)}") for _ in range(2))
        link = BrokerLink([a.address, b.address], default_timeout_s=30.0)
        try:
            while len(link.live) < 2:
                await asyncio.sleep(0.01)
            await use(link, a, b)
        finally:
            link.close()
            a.close()
            b.close()

    asyncio.run(scenario())


def test_requests_are_spread_over_the_live_brokers() -> None:
    async def use(link: BrokerLink, a: StandIn, b: StandIn) -> None:
        calls = [asyncio.ensure_future(link.infer("add", "add_common", [])) for _ in range(4)]
        got = [await a.request(), await a.request(), await b.request(), await b.request()]
        for (peer, request), stand_in in zip(got, [a, a, b, b], strict=True):
            await stand_in.reply(peer, Reply(request.request_id, 1))
        assert sorted(reply.request_id for reply in await asyncio.gather(*calls)) == [
            request.request_id for _, request in sorted(got, key=lambda item: item[1].request_id)
        ]

    with_brokers(use)


def test_a_silent_brokers_request_is_sent_again_to_the_other_and_answered_once() -> None:
    async def use(link: BrokerLink, a: StandIn, b: StandIn) -> None:
        call = asyncio.ensure_future(link.infer("add", "add_common", [], rid="r-1"))
        peer_a, first = await a.request()
        a.silence()
        silenced = time.monotonic()
        peer_b, second = await b.request()
        detected_s = time.monotonic() - silenced
        # silent for LIVENESS_S since it last answered (up to HEARTBEAT_S before `silence`)
        assert LIVENESS_S - HEARTBEAT_S < detected_s < LIVENESS_S + 1.5
        assert (second.rid, second.servable, second.method) == ("r-1", "add", "add_common")
        assert second.request_id != first.request_id
        assert second.timeout_ms is not None and second.timeout_ms < first.timeout_ms  # type: ignore[operator]
        await a.reply(peer_a, Reply(first.request_id, 7))  # the abandoned attempt's: ignored
        await asyncio.sleep(0.1)
        assert not call.done()
        await b.reply(peer_b, Reply(second.request_id, 1))
        assert await call == Reply(second.request_id, 1)
        assert link.resubmitted == 1

    with_brokers(use)


def test_a_restarted_brokers_requests_are_sent_again() -> None:
    async def use(link: BrokerLink, a: StandIn, b: StandIn) -> None:
        b.silence()  # only `a` is left
        while link.live != [a.address]:
            await asyncio.sleep(0.01)
        call = asyncio.ensure_future(link.infer("add", "add_common", []))
        _, first = await a.request()
        a.incarnation = "restarted"  # its next heartbeat says it is another process
        peer, second = await a.request()
        assert second.request_id != first.request_id
        await a.reply(peer, Reply(second.request_id, 1))
        assert (await call).request_id == second.request_id
        assert link.resubmitted == 1

    with_brokers(use)


def test_a_leaving_brokers_requests_go_to_the_other_at_once() -> None:
    async def use(link: BrokerLink, a: StandIn, b: StandIn) -> None:
        call = asyncio.ensure_future(link.infer("add", "add_common", []))
        peer_a, first = await a.request()
        await a.socket.send_multipart(transport.frames_of(Disconnect("bye"), peer=peer_a))
        started = time.monotonic()
        peer_b, second = await b.request()
        assert time.monotonic() - started < 0.5  # no waiting for silence
        assert second.request_id != first.request_id
        await b.reply(peer_b, Reply(second.request_id, 1))
        assert (await call).request_id == second.request_id

    with_brokers(use)
