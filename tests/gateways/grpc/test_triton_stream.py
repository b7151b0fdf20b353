"""`ModelStreamInfer` with real broker, worker and gateway processes: through tritonclient's
stream API (`start_stream` / `async_stream_infer` / `stop_stream`) and a bare stub."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from msq.gateways.grpc.v2 import STREAM_METHOD
from msq.proto import grpc_predict_v2_pb2 as v2
from msq.proto import grpc_predict_v2_pb2_grpc as v2_grpc
from tests.gateways.grpc_processes import GrpcStack
from tests.integration.test_metrics import Samples, scrape, value

Answer = tuple[triton.InferResult | None, InferenceServerException | None]
WRONG_DTYPE = (
    "Given model input x1 (index 0) data type float64 not match the data type float32 "
    "defined in model"
)
#: Long enough that the requests sent after it on the stream are answered first.
NAP_S = 1.5


@pytest.fixture
def client(grpc_stack: GrpcStack) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(grpc_stack.address)
    yield client
    client.close()


def add_inputs(x1: np.ndarray) -> list[triton.InferInput]:
    inputs = []
    for name, array in (("x1", x1), ("x2", np.ones_like(x1))):
        datatype = "FP64" if array.dtype == np.float64 else "FP32"
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def stream_counts(samples: Samples) -> dict[str, float]:
    """The gateway's counts of stream requests by code, and its latency count."""
    counts = {
        code: value(samples, "msq_grpc_requests_total", method=STREAM_METHOD, code=code)
        for code in ("OK", "INVALID_ARGUMENT", "NOT_FOUND")
    }
    counts["timed"] = value(
        samples, "msq_grpc_request_duration_seconds_count", method=STREAM_METHOD
    )
    return counts


def test_tritonclient_stream_answers_each_request_concurrently_and_errors_alone(
    client: triton.InferenceServerClient, grpc_stack: GrpcStack
) -> None:
    before = stream_counts(scrape(grpc_stack.metrics_port))
    answers: queue.Queue[Answer] = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    seconds = triton.InferInput("seconds", [1], "FP64")
    seconds.set_data_from_numpy(np.array([NAP_S]))
    client.async_stream_infer("slow.nap", [seconds], request_id="nap")
    for i in range(3):
        x1 = np.full((1, 2, 2), i, np.float32)
        client.async_stream_infer("add.add_common", add_inputs(x1), request_id=f"add-{i}")
    client.async_stream_infer("add.add_common", add_inputs(np.zeros((1, 2, 2))), request_id="bad")
    client.async_stream_infer("nope", add_inputs(np.zeros((1, 2, 2), np.float32)))
    x1 = np.full((2, 2, 2), 7, np.float32)
    client.async_stream_infer("add.add_common", add_inputs(x1), request_id="after-errors")
    client.stop_stream()  # returns when every request is answered and the stream has ended

    received = [answers.get_nowait() for _ in range(answers.qsize())]
    errors = sorted(error.message() for _, error in received if error is not None)
    assert errors == [WRONG_DTYPE, "model 'nope' is not available"]
    results = {r.get_response().id: r for r, _ in received if r is not None}
    assert list(results)[-1] == "nap"  # answered last although sent first
    assert sorted(results) == ["add-0", "add-1", "add-2", "after-errors", "nap"]
    for i in range(3):
        np.testing.assert_array_equal(results[f"add-{i}"].as_numpy("y"), np.full((1, 2, 2), i + 1))
    np.testing.assert_array_equal(results["after-errors"].as_numpy("y"), np.full((2, 2, 2), 8))
    assert results["nap"].as_numpy("slept").tolist() == [NAP_S]
    assert results["nap"].get_response().model_name == "slow.nap"

    after = stream_counts(scrape(grpc_stack.metrics_port))
    counted = {key: after[key] - before[key] for key in after}
    assert counted == {"OK": 5, "INVALID_ARGUMENT": 1, "NOT_FOUND": 1, "timed": 7}


def test_error_answers_echo_the_request_id_and_the_stream_ends_cleanly(
    grpc_stack: GrpcStack,
) -> None:
    def request(model: str, rid: str, dtype: type[np.generic]) -> v2.ModelInferRequest:
        message = v2.ModelInferRequest(model_name=model, model_version="1", id=rid)
        for name in ("x1", "x2"):
            datatype = "FP64" if dtype is np.float64 else "FP32"
            message.inputs.add(name=name, datatype=datatype, shape=[1, 2, 2])
            message.raw_input_contents.append(np.ones((1, 2, 2), dtype).tobytes())
        return message

    sent = [
        request("add.add_common", "good", np.float32),
        request("add.add_common", "bad", np.float64),
    ]
    with grpc.insecure_channel(grpc_stack.address) as channel:
        stub = v2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        call = stub.ModelStreamInfer(iter(sent), timeout=30)
        responses = {r.infer_response.id: r for r in call}
        assert call.code() == grpc.StatusCode.OK
    assert sorted(responses) == ["bad", "good"]
    good, bad = responses["good"], responses["bad"]
    assert good.error_message == ""
    assert good.infer_response.model_version == "1"
    y = np.frombuffer(good.infer_response.raw_output_contents[0], np.float32)
    assert y.tolist() == [2.0] * 4
    assert bad.error_message == WRONG_DTYPE
    assert (bad.infer_response.model_name, bad.infer_response.model_version) == (
        "add.add_common",
        "1",
    )
    assert list(bad.infer_response.outputs) == []


def test_a_stream_cancelled_mid_request_leaves_the_gateway_serving(
    client: triton.InferenceServerClient,
) -> None:
    answers: queue.Queue[Answer] = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    seconds = triton.InferInput("seconds", [1], "FP64")
    seconds.set_data_from_numpy(np.array([NAP_S]))
    client.async_stream_infer("slow.nap", [seconds], request_id="nap")
    client.stop_stream(cancel_requests=True)
    result, error = answers.get(timeout=30)
    assert result is None
    assert error is not None and "CANCELLED" in str(error.status())
    x1 = np.full((1, 2, 2), 2, np.float32)
    np.testing.assert_array_equal(
        client.infer("add.add_common", add_inputs(x1)).as_numpy("y"), x1 + 1
    )
