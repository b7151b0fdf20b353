"""`msq.proto.transport.readable`: whether a message waits, without a failing receive."""

from __future__ import annotations

import zmq

from msq.proto import transport
from msq.proto.messages import Heartbeat


def test_readable_says_whether_a_message_waits() -> None:
    context = zmq.Context.instance()
    router = transport.router(context, "inproc://msq-test-readable")
    dealer = transport.dealer(context, "inproc://msq-test-readable")
    try:
        assert not transport.readable(router)
        for incarnation in ("a", "b"):
            dealer.send_multipart(transport.frames_of(Heartbeat(incarnation)))
        assert router.poll(5000) == zmq.POLLIN
        received = []
        while transport.readable(router):
            _, *frames = router.recv_multipart(copy=False)
            received.append(transport.message_of(frames))
        assert received == [Heartbeat("a"), Heartbeat("b")]
        assert not transport.readable(dealer)
    finally:
        dealer.close(linger=0)
        router.close(linger=0)
