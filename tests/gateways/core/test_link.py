"""The broker link's side of the deadline rule, against a stand-in broker on an inproc ROUTER:
the Request carries the time left, the link waits until the same deadline (plus its grace), and
a deadline that has already passed is answered without sending anything."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import zmq
import zmq.asyncio

from msq.gateways.core.link import DEADLINE_GRACE_S, BrokerLink
from msq.proto import transport
from msq.proto.deadline import Deadline, DeadlineSource
from msq.proto.errors import ErrorKind
from msq.proto.messages import Reply, Request

_ADDRESSES = itertools.count()


def with_broker(use: Callable[[BrokerLink, zmq.asyncio.Socket], Awaitable[None]]) -> None:
    """Run `use` on a link connected to a ROUTER that stands in for the broker."""

    async def scenario() -> None:
        address = f"inproc://msq-test-link-{next(_ADDRESSES)}"
        context = zmq.asyncio.Context.instance()
        broker: zmq.asyncio.Socket = transport.router(context, address)  # type: ignore[assignment]
        link = BrokerLink(address, default_timeout_s=0.2)
        try:
            await use(link, broker)
        finally:
            link.close()
            broker.close(linger=0)

    asyncio.run(scenario())


async def received(broker: zmq.asyncio.Socket) -> tuple[bytes, Request]:
    """The next request the stand-in broker gets, and its sender."""
    peer, *frames = await asyncio.wait_for(broker.recv_multipart(copy=False), 5.0)
    request = transport.message_of(frames)
    assert isinstance(request, Request)
    return peer.bytes, request


def test_the_request_carries_the_time_left_and_the_link_waits_until_the_deadline() -> None:
    async def use(link: BrokerLink, broker: zmq.asyncio.Socket) -> None:
        started = time.monotonic()
        deadline = Deadline.after(0.3, DeadlineSource.TIMEOUT_HEADER, started)
        call = asyncio.ensure_future(link.infer("slow", "nap", [], deadline=deadline))
        _, request = await received(broker)
        assert request.timeout_ms is not None and 150 < request.timeout_ms <= 300
        reply = await call  # the stand-in broker never answers
        took = time.monotonic() - started
        assert 0.3 + DEADLINE_GRACE_S - 0.05 < took < 0.3 + DEADLINE_GRACE_S + 0.5
        assert reply.error is not None and reply.error.kind is ErrorKind.TIMEOUT

    with_broker(use)


def test_without_a_deadline_the_links_default_applies() -> None:
    async def use(link: BrokerLink, broker: zmq.asyncio.Socket) -> None:
        call = asyncio.ensure_future(link.infer("add", "add_common", []))
        peer, request = await received(broker)
        assert request.timeout_ms is not None and 100 < request.timeout_ms <= 200 + 1e-6
        await broker.send_multipart(transport.frames_of(Reply(request.request_id, 3), peer=peer))
        assert await call == Reply(request.request_id, 3)

    with_broker(use)


def test_a_passed_deadline_is_answered_without_sending() -> None:
    async def use(link: BrokerLink, broker: zmq.asyncio.Socket) -> None:
        passed = Deadline.after(0.5, DeadlineSource.GRPC_DEADLINE, time.monotonic() - 1.0)
        reply = await link.infer("add", "add_common", [], deadline=passed)
        assert reply.error is not None
        assert (reply.error.kind, reply.error.message) == (
            ErrorKind.TIMEOUT,
            "request timed out: its deadline (500 ms from the gRPC deadline) passed unsent",
        )
        assert await broker.poll(100) == 0

    with_broker(use)
