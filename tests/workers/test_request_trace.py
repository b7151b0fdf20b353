"""Tracing one request through the real pieces in one process: the REST gateway app (its
middleware, route and broker link), the broker core, and a worker's job runner on a servable with
a pre-processing, a model and a post-processing stage. Needs the tracing extra."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip(
    "opentelemetry.sdk.trace", reason="the tracing extra is not installed: pip install msq[tracing]"
)
import falcon.testing
import zmq
import zmq.asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from msq import tracing
from msq.broker.core import BrokerCore
from msq.gateways.rest.app import create_app
from msq.gateways.rest.state import RestSettings
from msq.proto import transport
from msq.proto.messages import Heartbeat, Job, Ready, Reply
from msq.workers.loop import JobRunner
from msq.workers.servable import LoadedServable

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
WORKER = b"worker-1"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.setup_tracing("msq-test", True, exporter)
    yield exporter
    tracing.stop_tracing()


async def serve_one(router: zmq.asyncio.Socket, core: BrokerCore, runner: JobRunner) -> Job:
    """The broker and worker side of one request: core -> job (over the wire) -> runner; the
    core answers the link's heartbeats meanwhile."""
    while True:
        client, *frames = await router.recv_multipart(copy=False)
        request = transport.message_of(frames)
        if not isinstance(request, Heartbeat):
            break
        for out in core.on_gateway_heartbeat(client.bytes, time.monotonic()):
            await router.send_multipart([out.peer, *transport.frames_of(out.message)])
    (sent,) = core.on_request(client.bytes, request, time.monotonic())  # type: ignore[arg-type]
    job = transport.message_of([zmq.Frame(f) for f in transport.frames_of(sent.message)])
    assert isinstance(job, Job)
    result = runner.run(job, runner.received(job))
    (answer,) = core.on_worker_message(WORKER, result, time.monotonic())
    assert isinstance(answer.message, Reply)
    await router.send_multipart([client.bytes, *transport.frames_of(answer.message)])
    return job


async def one_request(pipes: LoadedServable, headers: dict[str, str]) -> tuple[Any, Job]:
    context = zmq.asyncio.Context.instance()
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    core = BrokerCore(now=time.monotonic())
    ready = Ready(pipes.name, pipes.version, pipes.signatures, capacity=1)
    core.on_worker_message(WORKER, ready, time.monotonic())
    app = create_app(RestSettings(broker=f"tcp://127.0.0.1:{port}"))
    body = {"instances": [{"x1": [[1.0, 2.0], [3.0, 4.0]], "x2": [[1.0, 1.0], [1.0, 1.0]]}]}
    try:
        async with falcon.testing.ASGIConductor(app) as conductor:
            served = asyncio.create_task(serve_one(router, core, JobRunner(pipes.execute)))
            result = await conductor.simulate_post(
                "/model/pipes:pre_model_post", body=json.dumps(body), headers=headers
            )
            job = await served
    finally:
        router.close(linger=0)
    return result, job


def test_one_request_yields_connected_spans_in_order(
    pipes: LoadedServable, spans: InMemorySpanExporter
) -> None:
    traceparent = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
    headers = {"traceparent": traceparent, "X-Request-Id": "traced-1"}
    result, job = asyncio.run(one_request(pipes, headers))
    assert result.status_code == 200
    assert result.json == {"instances": [{"y": [[4.0, 6.0], [8.0, 10.0]]}]}
    assert job.rids == ["traced-1"] and len(job.traces) == 1
    finished = sorted(spans.get_finished_spans(), key=lambda span: span.start_time)
    assert [span.name for span in finished] == [
        "msq.gateway.receive",
        "msq.broker.queue",
        "msq.worker.preprocess",
        "msq.worker.model",
        "msq.worker.postprocess",
        "msq.gateway.reply",
    ]
    receive, *children = finished
    assert {format(span.context.trace_id, "032x") for span in finished} == {TRACE_ID}
    assert format(receive.parent.span_id, "016x") == CLIENT_SPAN
    assert receive.attributes["msq.request_id"] == "traced-1"
    assert all(span.parent.span_id == receive.context.span_id for span in children)
    assert job.traces[0].traceparent.split("-")[2] == format(receive.context.span_id, "016x")
    for earlier, later in itertools.pairwise(children):
        assert earlier.end_time <= later.start_time
    assert receive.start_time <= children[0].start_time
    assert children[-1].end_time <= receive.end_time


def test_without_tracing_nothing_is_traced_and_nothing_travels(pipes: LoadedServable) -> None:
    result, job = asyncio.run(
        one_request(pipes, {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"})
    )
    assert result.status_code == 200
    assert job.traces == [] and not tracing.enabled()


def test_tracing_off_imports_no_opentelemetry() -> None:
    code = (
        "import sys; import msq.gateways.rest.app, msq.gateways.grpc.server, msq.broker.loop, "
        "msq.workers.loop, msq.workers.pipeline; from msq import tracing; "
        "tracing.setup_tracing('msq-x', False); "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == "[]"
