"""Bytes that are not the method's request message: INVALID_ARGUMENT with a clear message, at
most one log line per method and minute, counted by the metrics; the gateway keeps serving."""

from __future__ import annotations

import asyncio
import time

import grpc
import grpc.aio
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from msq.benchmarks.serve_hops import predict_request as add_predict_request
from msq.gateways.core.link import BrokerLink
from msq.gateways.grpc.metrics import RequestMetrics
from msq.gateways.grpc.ms_service import MSService
from msq.proto import grpc_predict_v2_pb2 as v2_pb
from msq.proto import ms_service_pb2 as ms_pb
from msq.proto.codec import FRAME_THRESHOLD
from tests.gateways.grpc_processes import GrpcStack

PREDICT = "/mindspore.serving.proto.MSService/Predict"
V2_SERVICE = v2_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
#: Not a protobuf message: a varint that never ends.
GARBAGE = b"\xff" * 12
#: Large enough for the zero-copy decoders: field 2 claims 1 GiB but the message ends first.
LARGE_GARBAGE = b"\x12\x80\x80\x80\x80\x04" + bytes(FRAME_THRESHOLD)


def call_raw(address: str, method: str, body: bytes) -> grpc.RpcError:
    """Send `body` as the request of `method`; the error it ends with."""
    with grpc.insecure_channel(address) as channel:
        rpc = channel.unary_unary(method)  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as raised:
            rpc(body, timeout=30)
    return raised.value


def garbage_lines(stack: GrpcStack, method: str) -> list[str]:
    text = stack.gateway.log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if f"{method}: request is not a valid" in line]


def test_a_garbage_flood_logs_one_line_and_the_gateway_keeps_serving(
    grpc_stack: GrpcStack,
) -> None:
    # First in this module: no garbage reached ServerLive or ModelReady before.
    flooded = "/inference.GRPCInferenceService/ServerLive"
    sentinel = "/inference.GRPCInferenceService/ModelReady"
    with grpc.insecure_channel(grpc_stack.address) as channel:
        rpc = channel.unary_unary(flooded)
        codes = set()
        for _ in range(100):
            with pytest.raises(grpc.RpcError) as raised:
                rpc(GARBAGE, timeout=30)
            codes.add(raised.value.code())  # type: ignore[attr-defined]
        predict = channel.unary_unary(
            PREDICT,
            request_serializer=ms_pb.PredictRequest.SerializeToString,
            response_deserializer=ms_pb.PredictReply.FromString,
        )
        reply = predict(add_predict_request(), timeout=30)
    call_raw(grpc_stack.address, sentinel, GARBAGE)  # logged after every line of the flood
    deadline = time.monotonic() + 30
    while not garbage_lines(grpc_stack, sentinel) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert codes == {grpc.StatusCode.INVALID_ARGUMENT}
    assert len(garbage_lines(grpc_stack, sentinel)) == 1
    assert len(garbage_lines(grpc_stack, flooded)) == 1
    assert "Traceback" not in grpc_stack.gateway.log_path.read_text(errors="replace")
    assert not reply.error_msg
    y = np.frombuffer(reply.instances[0].items["y"].data, np.float32)
    assert y.tolist() == [2.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (GARBAGE, ""),  # protobuf's own reason, which differs between its implementations
        (LARGE_GARBAGE, "malformed message: a field runs past the end"),
    ],
    ids=["small", "large"],
)
def test_predict_garbage_is_invalid_argument(
    grpc_stack: GrpcStack, body: bytes, reason: str
) -> None:
    error = call_raw(grpc_stack.address, PREDICT, body)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    details = error.details()  # type: ignore[attr-defined]
    assert details.startswith("request is not a valid PredictRequest: ")
    assert reason in details


@pytest.mark.parametrize(
    "method", [method.name for method in V2_SERVICE.methods if not method.client_streaming]
)
def test_every_unary_v2_method_refuses_garbage(grpc_stack: GrpcStack, method: str) -> None:
    input_type = V2_SERVICE.methods_by_name[method].input_type.name
    error = call_raw(grpc_stack.address, f"/inference.GRPCInferenceService/{method}", GARBAGE)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error.details().startswith(f"request is not a valid {input_type}: ")  # type: ignore[attr-defined]


def test_large_v2_infer_garbage_is_invalid_argument(grpc_stack: GrpcStack) -> None:
    error = call_raw(
        grpc_stack.address, "/inference.GRPCInferenceService/ModelInfer", LARGE_GARBAGE
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error.details() == (  # type: ignore[attr-defined]
        "request is not a valid ModelInferRequest: malformed message: a field runs past the end"
    )


def test_metrics_count_undecodable_calls_as_invalid_argument() -> None:
    registry = CollectorRegistry()

    async def scenario() -> None:
        link = BrokerLink("tcp://127.0.0.1:1")  # never reached: nothing decodes
        server = grpc.aio.server()
        metrics = RequestMetrics(registry)
        server.add_generic_rpc_handlers((metrics.wrap(MSService(link, 5.0).handler()),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                rpc = channel.unary_unary(PREDICT)
                for _ in range(3):
                    with pytest.raises(grpc.aio.AioRpcError) as raised:
                        await rpc(GARBAGE, timeout=30)
                    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await server.stop(None)
            link.close()

    asyncio.run(scenario())
    labels = {"method": PREDICT, "code": "INVALID_ARGUMENT"}
    assert registry.get_sample_value("msq_grpc_requests_total", labels) == 3


def test_garbage_on_the_stream_is_answered_alone_and_the_stream_goes_on(
    grpc_stack: GrpcStack,
) -> None:
    request = v2_pb.ModelInferRequest(model_name="add.add_common", id="good")
    for name in ("x1", "x2"):
        tensor = request.inputs.add(name=name, datatype="FP32", shape=[1, 2, 2])
        tensor.contents.fp32_contents.extend([1.0, 1.0, 1.0, 1.0])
    with grpc.insecure_channel(grpc_stack.address) as channel:
        stream = channel.stream_stream(
            "/inference.GRPCInferenceService/ModelStreamInfer",
            response_deserializer=v2_pb.ModelStreamInferResponse.FromString,
        )  # bytes in
        answers = list(stream(iter([GARBAGE, request.SerializeToString()]), timeout=30))
    errors = [a.error_message for a in answers if a.error_message]
    good = [a.infer_response for a in answers if not a.error_message]
    assert len(errors) == 1
    assert errors[0].startswith("request is not a valid ModelInferRequest: ")
    assert [(r.id, list(r.outputs[0].shape)) for r in good] == [("good", [1, 2, 2])]
    y = np.frombuffer(good[0].raw_output_contents[0], np.float32)
    assert y.tolist() == [2.0, 2.0, 2.0, 2.0]
