"""Brokers killed under load, with real processes: two brokers, each worker registered with both,
a gRPC and a REST gateway linked to both.

- one broker SIGKILLed under load: no request fails, the other still has every worker;
- its requests in flight are sent again within ~2 s (measured with an in-process link);
- every broker SIGKILLed and one restarted at the same address under load: every request is
  answered, correctly, once — the gateways wait for the broker's next incarnation.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from msq.gateways.core.link import HEARTBEAT_S, LIVENESS_S, BrokerLink
from msq.proto.codec import from_wire, to_wire
from msq.proto.columns import stack
from msq.proto.messages import Reply
from tests.gateways.grpc_processes import gateway as grpc_gateway
from tests.gateways.rest_stack import rest_gateway
from tests.integration.linking import instance_outcomes
from tests.integration.steady_load import (
    Answer,
    SteadyLoad,
    ms_grpc_caller,
    rest_caller,
    v2_grpc_caller,
)
from tests.processes import (
    EXAMPLES,
    Proc,
    broker,
    endpoint,
    served,
    start_all,
    stop_all,
    wait_served,
)
from tests.processes import worker as worker_proc

SERVABLES = Path(__file__).parent / "servables"
SERVED = {"add": 2, "slow": 1}


@dataclass
class Deployment:
    """Two brokers (frontend, backend each), their workers and gateways."""

    frontends: list[str]
    backends: list[str]
    brokers: list[Proc]
    others: list[Proc]
    grpc_address: str
    rest_port: int

    def load(self) -> SteadyLoad:
        """Two clients per front door."""
        callers = {}
        for n in (1, 2):
            callers[f"ms-grpc-{n}"] = ms_grpc_caller(self.grpc_address)
            callers[f"v2-grpc-{n}"] = v2_grpc_caller(self.grpc_address)
            callers[f"ms-rest-{n}"] = rest_caller(self.rest_port)
        return SteadyLoad(callers)

    def kill(self, index: int) -> float:
        """SIGKILL broker `index`; when it was killed."""
        self.brokers[index].kill(signal.SIGKILL)
        self.brokers[index].process.wait()
        return time.monotonic()

    def restart(self, index: int) -> None:
        """Start broker `index` again at the same addresses and wait until every worker is
        registered with it again."""
        self.brokers[index] = broker(self.frontends[index], self.backends[index]).start()
        self.brokers[index].wait_ready()
        wait_served(self.frontends[index], SERVED, timeout_s=60.0)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    frontends, backends = [endpoint(), endpoint()], [endpoint(), endpoint()]
    to_brokers, to_workers = ",".join(frontends), ",".join(backends)
    grpc_proc, grpc_address = grpc_gateway(to_brokers)
    rest_proc, rest_port = rest_gateway(to_brokers, "--workers", "1")
    brokers = [broker(f, b) for f, b in zip(frontends, backends, strict=True)]
    others = [
        worker_proc(to_workers, "add", EXAMPLES),
        worker_proc(to_workers, "add", EXAMPLES),
        worker_proc(to_workers, "slow", SERVABLES),
        grpc_proc,
        rest_proc,
    ]
    started = start_all([*brokers, *others])
    running = Deployment(frontends, backends, started[:2], started[2:], grpc_address, rest_port)
    try:
        for frontend in frontends:
            wait_served(frontend, SERVED, timeout_s=60.0)
        yield running
    finally:
        stop_all([*running.brokers, *running.others])


def assert_all_answered_once_and_right(answers: list[Answer], after: float) -> None:
    """No failed or wrong answer, one answer per request, and each client answered after
    `after` (the kill)."""
    problems = [(a.client, a.seq, a.problem) for a in answers if a.problem is not None]
    assert problems == []
    per_request = Counter((a.client, a.seq) for a in answers)
    assert set(per_request.values()) == {1}
    for client in {a.client for a in answers}:
        seqs = sorted(a.seq for a in answers if a.client == client)
        assert seqs == list(range(1, len(seqs) + 1))  # none lost in between
        assert any(a.at > after for a in answers if a.client == client), client


def test_a_killed_brokers_requests_are_sent_again_within_2_s(deployment: Deployment) -> None:
    async def use() -> tuple[float, list[Reply]]:
        link = BrokerLink(deployment.frontends)
        try:
            while len(link.live) < 2:
                await asyncio.sleep(0.01)
            instances = [
                stack([{"x": to_wire(np.float32(i)), "delay": to_wire(np.float32(1.0))}])
                for i in range(4)
            ]
            calls = [
                asyncio.ensure_future(link.infer("slow", "compute", batch, timeout_s=30))
                for batch in instances
            ]
            while sorted(link.in_flight.values()) != [2, 2]:
                await asyncio.sleep(0.005)
            killed = deployment.kill(0)
            while link.resubmitted < 2:
                await asyncio.sleep(0.005)
            detected_s = time.monotonic() - killed
            return detected_s, list(await asyncio.gather(*calls))
        finally:
            link.close()

    try:
        detected_s, replies = asyncio.run(use())
        print(f"SIGKILL to resubmission: {detected_s:.2f} s")
        # silent for LIVENESS_S since its last heartbeat (up to HEARTBEAT_S before the kill)
        assert LIVENESS_S - HEARTBEAT_S <= detected_s < 4.0  # generous for a loaded machine
        ys = [float(from_wire(instance_outcomes(reply)[0]["y"])) for reply in replies]  # type: ignore[index, arg-type]
        assert ys == [0.0, 2.0, 4.0, 6.0]
        assert served(deployment.frontends[1]) == SERVED
    finally:
        deployment.restart(0)


def test_killing_one_of_two_brokers_under_load_fails_no_request(deployment: Deployment) -> None:
    load = deployment.load().start()
    try:
        load.wait_answered(60)
        killed = deployment.kill(1)
        load.wait_answered(load.answered() + 120)
    finally:
        answers = load.stop()
    try:
        assert_all_answered_once_and_right(answers, killed)
        assert served(deployment.frontends[0]) == SERVED  # the survivor has every worker
    finally:
        deployment.restart(1)


def test_every_broker_killed_and_one_restarted_at_its_address_under_load_fails_no_request(
    deployment: Deployment,
) -> None:
    load = deployment.load().start()
    try:
        load.wait_answered(60)
        killed = deployment.kill(0)
        deployment.kill(1)
        deployment.restart(0)
        load.wait_answered(load.answered() + 120)
    finally:
        answers = load.stop()
    try:
        assert_all_answered_once_and_right(answers, killed)
        stalled = max(b.at - a.at for a, b in itertools.pairwise(answers))
        print(f"longest gap between two answers: {stalled:.2f} s")
    finally:
        deployment.restart(1)
