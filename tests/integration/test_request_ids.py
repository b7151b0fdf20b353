"""Request ids end to end with real processes: a client's id (or a generated one) is echoed to
the client and named in the log lines of the gateway, the broker and the worker; JSON log lines
parse and carry it."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

from msq.benchmarks.serve_hops import predict_request as add_predict_request
from msq.proto import grpc_predict_v2_pb2 as v2
from msq.proto import grpc_predict_v2_pb2_grpc as v2_grpc
from msq.proto import ms_service_pb2_grpc as pb_grpc
from tests.gateways.grpc_processes import gateway as grpc_gateway
from tests.gateways.rest_stack import call, rest_gateway
from tests.processes import EXAMPLES, Proc, broker, endpoint, start_served, stop_all, worker

DEBUG = ("--log-level", "DEBUG")
JSON = ("--log-format", "json")
GENERATED = re.compile(r"[0-9a-f]{32}")
ADD_BODY = json.dumps({"instances": [{"x1": [[1.0, 2.0], [3.0, 4.0]], "x2": [[1.0] * 2] * 2}]})


@dataclass
class Stack:
    broker: Proc
    worker: Proc
    grpc: Proc
    rest: Proc
    grpc_address: str
    rest_port: int

    def rest_call(
        self, path: str, body: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.rest_port, timeout=30)
        try:
            return call(connection, "POST", path, body.encode(), headers)
        finally:
            connection.close()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Broker and gRPC gateway logging JSON, worker and REST gateway text; all at DEBUG."""
    frontend, backend = endpoint(), endpoint()
    grpc_proc, grpc_address = grpc_gateway(frontend, *DEBUG, *JSON)
    rest_proc, rest_port = rest_gateway(frontend, "--workers", "1", *DEBUG)
    procs = [
        broker(frontend, backend, *DEBUG, *JSON),
        worker(backend, "add", EXAMPLES, *DEBUG),
        grpc_proc,
        rest_proc,
    ]
    started = start_served(procs, frontend, {"add": 1})
    yield Stack(*started, grpc_address, rest_port)
    stop_all(started)


def json_lines(proc: Proc) -> list[dict[str, object]]:
    """Every JSON log line of a process (its other stderr lines, e.g. "ready", skipped)."""
    lines = proc.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def wait_logged(proc: Proc, rid: str, timeout_s: float = 5.0) -> str:
    """The process's log once it names `rid` (its stderr is copied to the file by a thread)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = proc.log_path.read_text()
        if rid in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def assert_logged_everywhere(stack: Stack, gateway: Proc, rid: str) -> None:
    """`rid` is in the gateway's, the broker's and the worker's log lines about the request."""
    for proc in (stack.broker, stack.worker, gateway):
        wait_logged(proc, rid)
    broker_ids = [line.get("request_id") for line in json_lines(stack.broker)]
    job_ids = [line.get("request_ids") for line in json_lines(stack.broker)]
    assert rid in broker_ids
    assert any(isinstance(ids, list) and rid in ids for ids in job_ids)
    worker_lines = [line for line in stack.worker.log_path.read_text().splitlines() if rid in line]
    assert any(
        "msq.workers.loop: job " in line and re.search(rf"\[request_ids=([^ ]+,)?{rid}\b", line)
        for line in worker_lines
    ), worker_lines
    if gateway is stack.grpc:
        assert rid in [line.get("request_id") for line in json_lines(gateway)]
    else:
        assert f"[request_id={rid}]" in gateway.log_path.read_text()


def v2_request(request_id: str = "") -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name="add.add_common", id=request_id)
    for name in ("x1", "x2"):
        request.inputs.add(name=name, datatype="FP32", shape=[1, 2, 2])
        request.raw_input_contents.append(np.ones((1, 2, 2), np.float32).tobytes())
    return request


def echoed(call_: grpc.Call) -> str:
    ids = [value for key, value in call_.trailing_metadata() or () if key == "x-request-id"]
    assert len(ids) == 1
    return str(ids[0])


def test_rest_ms_request_id_is_echoed_and_logged_everywhere(stack: Stack) -> None:
    status, headers, body = stack.rest_call(
        "/model/add:add_common", ADD_BODY, {"X-Request-Id": "rest-ms-1"}
    )
    assert status == 200 and json.loads(body) == {"instances": [{"y": [[2.0, 3.0], [4.0, 5.0]]}]}
    assert headers["x-request-id"] == "rest-ms-1"
    assert_logged_everywhere(stack, stack.rest, "rest-ms-1")


def test_rest_v2_takes_the_body_id_unless_a_header_gives_one(stack: Stack) -> None:
    body = json.dumps(
        {
            "id": "v2-body-1",
            "inputs": [
                {"name": name, "datatype": "FP32", "shape": [1, 2, 2], "data": [1, 2, 3, 4]}
                for name in ("x1", "x2")
            ],
        }
    )
    status, headers, answer = stack.rest_call("/v2/models/add.add_common/infer", body)
    assert status == 200 and json.loads(answer)["id"] == "v2-body-1"
    assert headers["x-request-id"] == "v2-body-1"
    assert_logged_everywhere(stack, stack.rest, "v2-body-1")
    path = "/v2/models/add.add_common/infer"
    status, headers, answer = stack.rest_call(path, body, {"X-Request-Id": "v2-header-1"})
    assert status == 200 and json.loads(answer)["id"] == "v2-body-1"  # the protocol's echo
    assert headers["x-request-id"] == "v2-header-1"


@pytest.mark.parametrize("given", [None, "has spaces", "x" * 129, "caf\u00e9"])
def test_rest_requests_without_a_valid_id_get_a_generated_one(
    stack: Stack, given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-Id": given}
    status, answered, _ = stack.rest_call("/model/add:add_common", ADD_BODY, headers)
    assert status == 200
    assert GENERATED.fullmatch(answered["x-request-id"])
    assert f"[request_id={answered['x-request-id']}]" in wait_logged(
        stack.rest, answered["x-request-id"]
    )


def test_rest_errors_echo_the_request_id_too(stack: Stack) -> None:
    status, headers, body = stack.rest_call(
        "/model/nope:add_common", ADD_BODY, {"X-Request-Id": "rest-missing-1"}
    )
    assert status == 200 and "servable is not available" in json.loads(body)["error_msg"]
    assert headers["x-request-id"] == "rest-missing-1"
    assert "rest-missing-1" in wait_logged(stack.broker, "rest-missing-1")


def test_grpc_ms_service_metadata_id_is_echoed_and_logged_everywhere(stack: Stack) -> None:
    with grpc.insecure_channel(stack.grpc_address) as channel:
        stub = pb_grpc.MSServiceStub(channel)
        reply, call_ = stub.Predict.with_call(
            add_predict_request(), metadata=[("x-request-id", "grpc-ms-1")], timeout=30
        )
        assert not reply.error_msg and len(reply.instances) == 1
        assert echoed(call_) == "grpc-ms-1"
        _, generated = stub.Predict.with_call(add_predict_request(), timeout=30)
    assert GENERATED.fullmatch(echoed(generated))
    assert_logged_everywhere(stack, stack.grpc, "grpc-ms-1")
    assert_logged_everywhere(stack, stack.grpc, echoed(generated))


def test_grpc_v2_request_id_is_echoed_and_logged_everywhere(stack: Stack) -> None:
    with grpc.insecure_channel(stack.grpc_address) as channel:
        stub = v2_grpc.GRPCInferenceServiceStub(channel)
        response, call_ = stub.ModelInfer.with_call(v2_request("grpc-v2-1"), timeout=30)
        assert response.id == "grpc-v2-1" and echoed(call_) == "grpc-v2-1"
        with pytest.raises(grpc.RpcError) as failed:
            stub.ModelInfer(
                v2.ModelInferRequest(model_name="nope"),
                metadata=[("x-request-id", "grpc-v2-missing")],
                timeout=30,
            )
    assert failed.value.code() is grpc.StatusCode.NOT_FOUND
    assert echoed(failed.value) == "grpc-v2-missing"  # type: ignore[arg-type]
    assert_logged_everywhere(stack, stack.grpc, "grpc-v2-1")


def test_json_log_lines_parse_and_name_their_requests(stack: Stack) -> None:
    for proc, program in ((stack.broker, "msq-broker"), (stack.grpc, "msq-grpc-gateway")):
        lines = json_lines(proc)
        assert lines
        for line in lines:
            assert {"time", "program", "level", "logger", "message"} <= line.keys()
            assert line["program"] == program
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(line["time"]))
