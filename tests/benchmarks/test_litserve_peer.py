"""The LitServe peer as a real process: MindSpore Serving JSON in and out, each request of a
LitServe batch answered with its own instances' outputs, invalid requests answered with an
error message while the rest of their batch is served."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("litserve", reason="the litserve extra is not installed (msq[litserve])")

from msq.benchmarks.compute import Compute, load_compute
from msq.benchmarks.payloads import ms_rest_body
from msq.benchmarks.scenarios import SCENARIOS
from msq.benchmarks.systems import System, start_system

MLP = SCENARIOS["mlp"]


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = start_system("litserve", MLP, tmp_path_factory.mktemp("litserve"))
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def compute() -> Compute:
    """The scenario's work in this process (MindSpore sets its threads once per process)."""
    return load_compute(MLP)


def _post(system: System, body: bytes) -> tuple[int, dict[str, Any]]:
    url = f"{system.endpoints.rest}/model/{MLP.servable}:{MLP.method}"
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return reply.status, json.loads(reply.read())


def test_answers_are_the_models(peer: System, compute: Compute) -> None:
    instances = MLP.instances(5, seed=3)
    status, document = _post(peer, ms_rest_body(instances))
    assert status == 200
    expected = compute(instances)
    got = [np.asarray(item["y"], dtype=np.float32) for item in document["instances"]]
    assert len(got) == 5
    for answer, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(answer, want["y"], rtol=1e-5, atol=1e-6)


def test_concurrent_requests_each_get_their_own_answers(peer: System, compute: Compute) -> None:
    """16 requests at once (batched together as they arrive): 1 to 3 instances each, every 4th
    invalid."""
    bodies = [
        b'{"instances": 3}' if index % 4 == 3 else ms_rest_body(MLP.instances(1 + index % 3, index))
        for index in range(16)
    ]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda body: _post(peer, body), bodies))
    for index, (status, document) in enumerate(replies):
        assert status == 200
        if index % 4 == 3:
            assert document == {"error_msg": "instances no key mode is not supported"}
            continue
        expected = compute(MLP.instances(1 + index % 3, index))
        got = [np.asarray(item["y"], dtype=np.float32) for item in document["instances"]]
        assert len(got) == len(expected), index
        for answer, want in zip(got, expected, strict=True):
            np.testing.assert_allclose(answer, want["y"], rtol=1e-5, atol=1e-6)


def test_peer_logs_its_ready_line(peer: System) -> None:
    (server,) = peer.servers
    assert "litserve-peer ready" in Path(server.log_path).read_text()
