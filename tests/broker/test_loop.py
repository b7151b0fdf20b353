"""The broker process on real sockets: malformed frames never stop it."""

from __future__ import annotations

import msgpack
import zmq

from msq.proto import transport
from msq.proto.errors import ErrorKind
from msq.proto.messages import PROTOCOL_VERSION, Reply, Status, StatusQuery
from tests.processes import Cluster


def _dealer(endpoint: str) -> zmq.Socket[bytes]:
    return transport.dealer(zmq.Context.instance(), endpoint)


def test_malformed_frames_are_answered_or_dropped_and_the_broker_stays_up(
    examples_cluster: Cluster,
) -> None:
    gateway = _dealer(examples_cluster.frontend)
    worker = _dealer(examples_cluster.backend)
    try:
        for frames in ([b"\xc1"], [b"\x00" * 10, b"x"], [msgpack.packb({"v": 1, "c": "hb"})]):
            gateway.send_multipart(frames)
            worker.send_multipart(frames)
        bad_request = [PROTOCOL_VERSION, "Request", 77, "add", "add_common",
                       [[1, {"x1": ["float32", [1, 2, 2], 5]}]], 0, None, "", ""]  # fmt: skip
        gateway.send_multipart([msgpack.packb(bad_request)])
        assert gateway.poll(5000)
        reply = transport.message_of(gateway.recv_multipart(copy=False))
        assert isinstance(reply, Reply)
        assert reply.request_id == 77
        assert reply.error is not None
        assert reply.error.kind is ErrorKind.INVALID_INPUT
        assert "tensor frame 5 does not exist" in reply.error.message
        gateway.send_multipart(transport.frames_of(StatusQuery(78)))
        assert gateway.poll(5000)
        status = transport.message_of(gateway.recv_multipart(copy=False))
        assert isinstance(status, Status)
        assert {info.servable for info in status.servables} >= {"add", "digits"}
    finally:
        gateway.close(linger=0)
        worker.close(linger=0)
    assert all(proc.process.poll() is None for proc in examples_cluster.procs)
