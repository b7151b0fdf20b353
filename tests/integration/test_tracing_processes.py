"""Tracing across real processes: the gateways and the worker run with `--tracing` and the
console exporter (stdout, read back here); one request gives connected spans in order."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

pytest.importorskip(
    "opentelemetry.sdk.trace", reason="the tracing extra is not installed: pip install msq[tracing]"
)

from msq.benchmarks.serve_hops import predict_request as add_predict_request
from msq.proto import ms_service_pb2_grpc as pb_grpc
from tests.gateways.grpc_processes import gateway as grpc_gateway
from tests.gateways.rest_stack import call, rest_gateway
from tests.processes import (
    EXAMPLES,
    Proc,
    broker,
    endpoint,
    start_served,
    stop_all,
    worker,
)

CONSOLE = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "50"}


@dataclass
class Traced:
    worker: Proc
    grpc: Proc
    rest: Proc
    grpc_address: str
    rest_port: int


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    out = tmp_path_factory.mktemp("spans")
    frontend, backend = endpoint(), endpoint()
    grpc_proc, grpc_address = grpc_gateway(frontend, "--tracing")
    rest_proc, rest_port = rest_gateway(frontend, "--workers", "1", "--tracing")
    worker_proc = worker(backend, "add", EXAMPLES)
    worker_proc.args.append("--tracing")
    for proc in (grpc_proc, rest_proc, worker_proc):
        proc.env, proc.stdout = CONSOLE, out / f"{proc.name}.out"
    procs = start_served(
        [broker(frontend, backend), worker_proc, grpc_proc, rest_proc], frontend, {"add": 1}
    )
    yield Traced(worker_proc, grpc_proc, rest_proc, grpc_address, rest_port)
    stop_all(procs)


def spans_of(path: Path, trace_id: str) -> list[dict[str, object]]:
    """The spans of trace `trace_id` the console exporter wrote (JSON objects in a row)."""
    text, found, decoder, at = path.read_text(), [], json.JSONDecoder(), 0
    while (start := text.find("{", at)) >= 0:
        span, at = decoder.raw_decode(text, start)
        if span["context"]["trace_id"] == f"0x{trace_id}":
            found.append(span)
    return found


def wait_spans(procs: list[Proc], trace_id: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10.0
    while True:
        spans = [s for proc in procs if proc.stdout for s in spans_of(proc.stdout, trace_id)]
        if len(spans) >= count or time.monotonic() > deadline:
            return sorted(spans, key=lambda span: str(span["start_time"]))


def check_connected(spans: list[dict[str, object]], client_span: str, names: list[str]) -> None:
    assert [span["name"] for span in spans] == names
    receive, *children = spans
    assert receive["parent_id"] == f"0x{client_span}"
    receive_id = receive["context"]["span_id"]  # type: ignore[index]
    assert all(span["parent_id"] == receive_id for span in children)


def test_rest_request_spans_cross_gateway_and_worker(traced: Traced) -> None:
    trace_id, client_span = os.urandom(16).hex(), os.urandom(8).hex()
    body = json.dumps({"instances": [{"x1": [[1.0, 2.0], [3.0, 4.0]], "x2": [[1.0] * 2] * 2}]})
    connection = http.client.HTTPConnection("127.0.0.1", traced.rest_port, timeout=30)
    headers = {"traceparent": f"00-{trace_id}-{client_span}-01"}
    status, _, _ = call(connection, "POST", "/model/add:add_common", body.encode(), headers)
    connection.close()
    assert status == 200
    names = ["msq.gateway.receive", "msq.broker.queue", "msq.worker.model", "msq.gateway.reply"]
    spans = wait_spans([traced.rest, traced.worker], trace_id, len(names))
    check_connected(spans, client_span, names)


def test_grpc_request_spans_cross_gateway_and_worker(traced: Traced) -> None:
    trace_id, client_span = os.urandom(16).hex(), os.urandom(8).hex()
    request = add_predict_request()
    with grpc.insecure_channel(traced.grpc_address) as channel:
        metadata = [("traceparent", f"00-{trace_id}-{client_span}-01")]
        reply = pb_grpc.MSServiceStub(channel).Predict(request, metadata=metadata, timeout=30)
    assert not reply.error_msg
    names = ["msq.gateway.receive", "msq.broker.queue", "msq.worker.model", "msq.gateway.reply"]
    spans = wait_spans([traced.grpc, traced.worker], trace_id, len(names))
    check_connected(spans, client_span, names)
