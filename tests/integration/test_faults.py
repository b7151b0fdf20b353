"""Failure cases with real processes: killed workers, full queues, deadlines, the launcher."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from msq.client import Client
from msq.gateways.core.link import BrokerLink
from msq.proto.codec import from_wire, to_wire
from msq.proto.columns import stack
from msq.proto.errors import ErrorKind
from msq.proto.messages import Reply
from tests.integration.linking import instance_outcomes, with_link
from tests.processes import (
    EXAMPLES,
    Cluster,
    Proc,
    broker,
    endpoint,
    free_port,
    start_cluster,
    wait_served,
)

SERVABLES = Path(__file__).parent / "servables"


def slow_request(link: BrokerLink, value: float, delay: float, count: int = 1,
                 timeout_s: float | None = None) -> asyncio.Future[Reply]:  # fmt: skip
    instances = [
        {"x": to_wire(np.float32(value + i)), "delay": to_wire(np.float32(delay))}
        for i in range(count)
    ]
    return asyncio.ensure_future(
        link.infer("slow", "compute", stack(instances), timeout_s=timeout_s)
    )


@pytest.fixture(scope="module")
def two_slow_workers() -> Iterator[Cluster]:
    cluster = start_cluster([("slow", SERVABLES)], workers_per_servable=2)
    yield cluster
    cluster.stop()


def test_two_workers_for_one_servable_both_receive_work(two_slow_workers: Cluster) -> None:
    async def use(link: BrokerLink) -> list[Reply]:
        return list(await asyncio.gather(*(slow_request(link, i, 0.05) for i in range(8))))

    replies = with_link(two_slow_workers.frontend, use)
    pids = {int(from_wire(instance_outcomes(r)[0]["pid"])) for r in replies}  # type: ignore[index, call-overload]
    worker_pids = {proc.pid for proc in two_slow_workers.procs[1:]}
    assert pids == worker_pids


def test_killing_a_worker_mid_request_costs_no_request(two_slow_workers: Cluster) -> None:
    victim = two_slow_workers.procs[1]

    async def use(link: BrokerLink) -> list[Reply]:
        calls = [slow_request(link, 10.0 * i, 0.2, count=2) for i in range(12)]
        await asyncio.sleep(0.3)
        victim.kill(signal.SIGKILL)
        return list(await asyncio.gather(*calls))

    replies = with_link(two_slow_workers.frontend, use)
    for i, reply in enumerate(replies):
        assert reply.error is None
        ys = [float(from_wire(o["y"])) for o in instance_outcomes(reply)]  # type: ignore[index, arg-type]
        assert ys == [20.0 * i, 20.0 * i + 2.0]


@pytest.fixture
def one_slow_worker_small_queue() -> Iterator[Cluster]:
    cluster = start_cluster([("slow", SERVABLES)], "--max-queue-size", "10")
    yield cluster
    cluster.stop()


def test_queue_full_and_deadline_each_give_their_own_error(
    one_slow_worker_small_queue: Cluster,
) -> None:
    async def use(link: BrokerLink) -> list[Reply]:
        too_large = await slow_request(link, 300.0, 0.0, count=11)  # can never fit
        busy = [slow_request(link, 0.0, 0.1, count=8) for _ in range(2)]  # two jobs in flight
        await asyncio.sleep(0.05)
        queued = slow_request(link, 100.0, 0.0, count=10)  # fills the queue of 10
        await asyncio.sleep(0.05)
        rejected = await slow_request(link, 200.0, 0.0)
        return [too_large, rejected, *await asyncio.gather(queued, *busy)]

    too_large, rejected, queued, *busy = with_link(one_slow_worker_small_queue.frontend, use)
    assert too_large.error is not None
    assert too_large.error.kind is ErrorKind.INVALID_INPUT
    assert too_large.error.message == (
        "request too large: 11 instances can never fit the queue of servable 'slow' version 1 "
        "method 'compute' (limit 10); split it into smaller requests"
    )
    assert rejected.error is not None
    assert rejected.error.kind is ErrorKind.QUEUE_FULL
    assert "enqueued requests count exceeds the limit 10" in rejected.error.message
    assert queued.error is None
    assert all(reply.error is None for reply in busy)

    async def late(link: BrokerLink) -> Reply:
        hog = slow_request(link, 0.0, 0.3, count=8)
        await asyncio.sleep(0.05)
        reply = await slow_request(link, 1.0, 0.0, timeout_s=0.1)
        await hog
        return reply

    started = time.monotonic()
    reply = with_link(one_slow_worker_small_queue.frontend, late)
    assert reply.error is not None
    assert reply.error.kind is ErrorKind.TIMEOUT
    assert reply.error.message.startswith("request timed out")
    assert time.monotonic() - started < 5


def test_launcher_serves_both_gateways_and_leaves_no_process_after_sigterm() -> None:
    frontend, backend = endpoint(), endpoint()
    grpc_address, rest_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    launcher = Proc(
        "launcher",
        [sys.executable, "-m", "msq.launcher.cli", "serve", str(EXAMPLES), "--rest-workers", "1",
         "--grpc", grpc_address, "--rest", rest_address,
         "--broker-frontend", frontend, "--broker-backend", backend],
    ).start()  # fmt: skip
    deadline = time.monotonic() + 180
    while "msq ready:" not in launcher.log():
        assert launcher.process.poll() is None, launcher.log()
        assert time.monotonic() < deadline, launcher.log()
        time.sleep(0.2)
    body = b'{"instances":{"x1":[[1.0,1.0],[1.0,1.0]],"x2":[[1.0,1.0],[1.0,1.0]]}}'
    request = urllib.request.Request(f"http://{rest_address}/model/add:add_common", data=body)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.read() == b'{"instances":[{"y":[[2.0,2.0],[2.0,2.0]]}]}'
    x = np.ones((2, 2), np.float32)
    (result,) = Client(grpc_address, "add", "add_common").infer({"x1": x, "x2": x})
    np.testing.assert_array_equal(result["y"], 2 * x)
    children = psutil.Process(launcher.pid).children(recursive=True)
    assert len(children) >= 5  # broker, a worker per servable, both gateways
    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.process.wait(30) == 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert len(gone) == len(children)


def test_workers_register_again_with_a_restarted_broker() -> None:
    cluster = start_cluster([("add", EXAMPLES)])
    replacement: Proc | None = None
    try:
        cluster.procs[0].kill(signal.SIGKILL)
        cluster.procs[0].process.wait(10)
        replacement = broker(cluster.frontend, cluster.backend).start().wait_ready()
        wait_served(cluster.frontend, {"add": 1}, timeout_s=30)
        x = np.full((2, 2), 3.0, np.float32)
        reply = with_link(
            cluster.frontend,
            lambda link: link.infer(
                "add", "add_common", stack([{"x1": to_wire(x), "x2": to_wire(x)}])
            ),
        )
        assert reply.error is None
        (outcome,) = instance_outcomes(reply)
        np.testing.assert_array_equal(from_wire(outcome["y"]), np.full((2, 2), 6.0))  # type: ignore[index]
    finally:
        cluster.stop()
        if replacement is not None:
            replacement.stop()
