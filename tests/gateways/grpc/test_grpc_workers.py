"""`msq-grpc-gateway --grpc-workers N`: real gateway processes sharing one port in front of a
real broker and `add` worker. Both children answer (seen by who holds the connections, and in
the parent's one `/metrics`), a SIGKILLed child is restarted while the other keeps answering,
SIGTERM leaves no process, a child that cannot start fails the parent, and N=1 is one process."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import psutil
import pytest

from msq.benchmarks.serve_hops import predict_request as add_predict_request
from msq.gateways.grpc.ms_service import SERVICE
from msq.proto import ms_service_pb2 as ms_pb
from msq.proto import ms_service_pb2_grpc as pb_grpc
from tests.integration.launching import wait_for
from tests.integration.test_metrics import scrape, value
from tests.processes import Cluster, Proc, free_port

PREDICT = f"/{SERVICE}/Predict"
#: Separate connections made to see both children answer (all on one: 2 * 2**-16).
CONNECTIONS = 16


class Gateway:
    """A running `msq-grpc-gateway --grpc-workers 2` and its port."""

    def __init__(self, frontend: str, *extra: str) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.proc = Proc(
            "grpc-workers",
            [sys.executable, "-m", "msq.gateways.grpc.cli", "--listen",
             f"127.0.0.1:{self.port}", "--broker", frontend, "--grpc-workers", "2",
             "--metrics-port", str(self.metrics_port), *extra],
        ).start()  # fmt: skip
        self.proc.wait_ready()

    def children(self) -> list[psutil.Process]:
        """The parent's live children."""
        return [
            child
            for child in psutil.Process(self.proc.pid).children()
            if child.status() != psutil.STATUS_ZOMBIE
        ]

    def connections(self, child: psutil.Process, state: str) -> int:
        """How many TCP sockets on the gateway's port `child` holds in `state`."""
        return sum(
            1
            for connection in child.net_connections(kind="tcp")
            if connection.laddr.port == self.port and connection.status == state
        )

    def listening(self) -> set[int]:
        """The pids of the children listening on the port."""
        return {child.pid for child in self.children() if self.connections(child, "LISTEN")}


@pytest.fixture(scope="module")
def gateway(examples_cluster: Cluster) -> Iterator[Gateway]:
    started = Gateway(examples_cluster.frontend)
    yield started
    started.proc.stop()


def predict(channel: grpc.Channel) -> np.ndarray:
    """add.add_common of ones and ones over `channel`: its one output."""
    stub = pb_grpc.MSServiceStub(channel)  # type: ignore[no-untyped-call]
    reply = stub.Predict(add_predict_request(), timeout=30)
    (instance,) = reply.instances
    tensor = instance.items["y"]
    assert tensor.dtype == ms_pb.MS_FLOAT32
    return np.frombuffer(tensor.data, np.float32).reshape(tuple(tensor.shape.dims))


def fresh_channel(port: int) -> grpc.Channel:
    """A channel with a connection of its own (no subchannel sharing between channels)."""
    return grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
    )


def predictions(gateway: Gateway) -> float:
    """The Predict calls answered OK, summed over the children by the parent's `/metrics`."""
    samples = scrape(gateway.metrics_port)
    return value(samples, "msq_grpc_requests_total", method=PREDICT, code="OK")


def test_both_children_answer_and_one_scrape_counts_them_all(gateway: Gateway) -> None:
    children = gateway.children()
    assert len({child.pid for child in children}) == 2
    assert gateway.listening() == {child.pid for child in children}
    before = value(
        scrape(gateway.metrics_port), "msq_grpc_requests_total", method=PREDICT, code="OK"
    )
    channels = [fresh_channel(gateway.port) for _ in range(CONNECTIONS)]
    try:
        for channel in channels:
            np.testing.assert_array_equal(predict(channel), np.full((2, 2), 2.0, np.float32))
        held = {child.pid: gateway.connections(child, "ESTABLISHED") for child in children}
        assert sum(held.values()) == CONNECTIONS
        assert all(count > 0 for count in held.values()), held
    finally:
        for channel in channels:
            channel.close()
    after = value(
        scrape(gateway.metrics_port), "msq_grpc_requests_total", method=PREDICT, code="OK"
    )
    assert after - before == CONNECTIONS


def test_a_killed_child_is_restarted_while_the_other_keeps_answering(gateway: Gateway) -> None:
    victim, survivor = gateway.children()
    stop, answered = threading.Event(), []

    def load() -> None:
        with fresh_channel(gateway.port) as channel:
            while not stop.is_set():
                try:
                    predict(channel)
                    answered.append(True)
                except grpc.RpcError:  # a call in flight on the killed child
                    answered.append(False)

    loaders = [threading.Thread(target=load) for _ in range(4)]
    for thread in loaders:
        thread.start()
    try:
        wait_for(lambda: len(answered) >= 20, 60)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        for _ in range(8):  # new connections go to the survivor
            with fresh_channel(gateway.port) as channel:
                np.testing.assert_array_equal(predict(channel), np.full((2, 2), 2.0, np.float32))
        after_kill = len(answered)
        wait_for(lambda: len(answered) >= after_kill + 20, 60)
        wait_for(lambda: len(gateway.listening()) == 2, 60)
    finally:
        stop.set()
        for thread in loaders:
            thread.join(60)
    restarted = gateway.listening() - {survivor.pid}
    assert len(restarted) == 1
    assert victim.pid not in restarted
    assert answered[after_kill:].count(True) >= 20
    log = gateway.proc.log()
    assert "exited unexpectedly with code -9; restarting in 1 s" in log
    assert "restarting grpc #" in log
    with fresh_channel(gateway.port) as channel:
        np.testing.assert_array_equal(predict(channel), np.full((2, 2), 2.0, np.float32))


def test_sigterm_stops_the_parent_and_every_child(examples_cluster: Cluster) -> None:
    started = Gateway(examples_cluster.frontend)
    children = started.children()
    assert len(children) == 2
    os.kill(started.proc.pid, signal.SIGTERM)
    assert started.proc.process.wait(30) == 0
    assert not any(child.is_running() for child in children)


def test_a_child_that_cannot_start_fails_the_parent(examples_cluster: Cluster) -> None:
    with socket.socket() as taken:  # not SO_REUSEPORT: nobody may share the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = Proc(
            "grpc-workers-taken",
            [sys.executable, "-m", "msq.gateways.grpc.cli", "--listen", f"127.0.0.1:{port}",
             "--broker", examples_cluster.frontend, "--grpc-workers", "2"],
        ).start()  # fmt: skip
        assert proc.process.wait(60) == 1
    assert "start-up failed: grpc #" in proc.log()
    assert not proc.ready.is_set()


def test_one_worker_is_one_process(examples_cluster: Cluster) -> None:
    port = free_port()
    proc = Proc(
        "grpc-one",
        [sys.executable, "-m", "msq.gateways.grpc.cli", "--listen", f"127.0.0.1:{port}",
         "--broker", examples_cluster.frontend],
    ).start()  # fmt: skip
    try:
        proc.wait_ready()
        assert psutil.Process(proc.pid).children() == []
        with fresh_channel(port) as channel:
            np.testing.assert_array_equal(predict(channel), np.full((2, 2), 2.0, np.float32))
    finally:
        proc.stop()
