"""The 2-rank `tp_mlp` example served by one worker owning its ranks (real processes): answers
equal to the unsharded model through both gateways, batching as for a one-process model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from msq.client import Client
from msq.gateways.core.link import BrokerLink
from msq.proto import columns
from msq.proto.codec import from_wire, to_wire
from msq.proto.messages import Reply
from tests.gateways.grpc_processes import gateway
from tests.gateways.rest_stack import rest_gateway
from tests.integration.distributed_support import inputs, reference
from tests.integration.linking import infer, instance_outcomes, values, with_link
from tests.processes import Proc, broker, endpoint, start_served, stop_all, worker

#: float32 sums in another order (two partial sums added by AllReduce).
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


@dataclass
class Stack:
    frontend: str
    grpc: str
    rest_port: int
    procs: list[Proc]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A broker, a worker for `tp_mlp` (2 ranks), one for `tp_mlp_single`, both gateways."""
    frontend, backend = endpoint(), endpoint()
    grpc_proc, grpc_address = gateway(frontend)
    rest_proc, rest_port = rest_gateway(frontend, "--workers", "1")
    procs = [broker(frontend, backend), worker(backend, "tp_mlp"),
             worker(backend, "tp_mlp_single"), grpc_proc, rest_proc]  # fmt: skip
    started = start_served(procs, frontend, {"tp_mlp": 1, "tp_mlp_single": 1})
    yield Stack(frontend, grpc_address, rest_port, started)
    stop_all(started)


@pytest.mark.parametrize("count", [1, 5, 16, 37])
def test_grpc_answers_equal_the_unsharded_model(stack: Stack, count: int) -> None:
    x = inputs(count, seed=count)
    sharded = Client(stack.grpc, "tp_mlp", "predict").infer([{"x": row} for row in x])
    single = Client(stack.grpc, "tp_mlp_single", "predict").infer([{"x": row} for row in x])
    got = np.stack([result["y"] for result in sharded])  # type: ignore[index]
    assert got.shape == (count, 16)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.stack([r["y"] for r in single]), **TOLERANCE)  # type: ignore[index]
    np.testing.assert_allclose(got, reference(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("count", [1, 3])
def test_rest_answers_equal_the_unsharded_model(stack: Stack, count: int) -> None:
    import http.client

    x = inputs(count, seed=100 + count)
    answers = {}
    for servable in ("tp_mlp", "tp_mlp_single"):
        connection = http.client.HTTPConnection("127.0.0.1", stack.rest_port, timeout=30)
        body = json.dumps({"instances": [{"x": row.tolist()} for row in x]})
        connection.request("POST", f"/model/{servable}:predict", body)
        response = connection.getresponse()
        document = json.loads(response.read())
        connection.close()
        assert response.status == 200, document
        answers[servable] = np.array([item["y"] for item in document["instances"]], np.float32)
    assert answers["tp_mlp"].shape == (count, 16)
    np.testing.assert_allclose(answers["tp_mlp"], answers["tp_mlp_single"], **TOLERANCE)
    np.testing.assert_allclose(answers["tp_mlp"], reference(x), rtol=1e-4, atol=1e-4)


def test_a_wrong_input_fails_alone_with_the_model_check(stack: Stack) -> None:
    good, bad = inputs(1)[0], np.zeros(63, np.float32)
    outcomes = values(infer(stack.frontend, "tp_mlp", "predict", [{"x": good}, {"x": bad}]))
    assert isinstance(outcomes[0], dict)
    np.testing.assert_allclose(outcomes[0]["y"], reference(good[None])[0], rtol=1e-4, atol=1e-4)
    failure = outcomes[1]
    assert not isinstance(failure, dict)
    assert failure.kind.value == "invalid_input"
    assert "shape" in failure.message or "size" in failure.message


def _route(frontend: str) -> dict[str, object]:
    status = with_link(frontend, lambda link: link.status())
    assert status is not None
    routes = status.stats["routes"]
    (route,) = [r for r in routes if r["servable"] == "tp_mlp"]  # type: ignore[attr-defined, index]
    return route  # type: ignore[no-any-return]


def test_concurrent_requests_are_coalesced_into_aligned_jobs(stack: Stack) -> None:
    x = inputs(64, seed=7)

    async def use(link: BrokerLink) -> list[Reply]:
        calls = [link.infer("tp_mlp", "predict", columns.stack([{"x": to_wire(row)}])) for row in x]
        return list(await asyncio.gather(*calls))

    before = _route(stack.frontend)
    replies = with_link(stack.frontend, use)
    after = _route(stack.frontend)
    jobs = after["executions"] - before["executions"]  # type: ignore[operator]
    assert after["instances"] - before["instances"] == 64  # type: ignore[operator]
    assert 64 / jobs > 4, f"{jobs} jobs for 64 instances: {after['job_sizes']}"
    sizes = after["job_sizes"]
    assert isinstance(sizes, dict)
    assert max(int(size) for size in sizes) <= 16  # the servable's largest aligned size
    got = np.stack([from_wire(instance_outcomes(reply)[0]["y"]) for reply in replies])  # type: ignore[index]
    np.testing.assert_allclose(got, reference(x), rtol=1e-4, atol=1e-4)
