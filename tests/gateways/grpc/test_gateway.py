"""msq-grpc-gateway's MindSpore Serving protocol through `msq.client`, with real broker, worker
and gateway processes: round trips of every dtype, errors and their codes, message limits,
deadlines, cancellation, health and reflection."""

from __future__ import annotations

import time
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from msq.client import Client
from msq.client.grpc_client import Results
from msq.proto import grpc_predict_v2_pb2 as v2
from msq.proto import grpc_predict_v2_pb2_grpc as v2_grpc
from msq.proto import ms_service_pb2 as pb
from msq.proto import ms_service_pb2_grpc as pb_grpc
from tests.gateways.grpc_processes import MAX_MSG_MB, GrpcStack
from tests.processes import free_port

NUMERIC = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
NUMERIC += ["float16", "float32", "float64"]


def sample(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(sum(shape) + len(dtype))
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def client(stack: GrpcStack, servable: str, method: str, **kwargs: Any) -> Client:
    return Client(stack.address, servable, method, **kwargs)


def ok(results: Results) -> list[dict[str, Any]]:
    """The per-instance results of a request that did not fail as a whole."""
    assert isinstance(results, list), results
    return results


def failed(results: Results) -> str:
    """The error of a request that failed as a whole."""
    assert isinstance(results, dict), results
    assert list(results) == ["error"]
    return results["error"]


def test_add_one_instance(grpc_stack: GrpcStack) -> None:
    ones = np.ones((2, 2), np.float32)
    (result,) = ok(client(grpc_stack, "add", "add_common").infer({"x1": ones, "x2": ones}))
    assert result["y"].dtype == np.float32
    np.testing.assert_array_equal(result["y"], np.full((2, 2), 2.0, np.float32))


def test_add_several_instances_in_order(grpc_stack: GrpcStack) -> None:
    instances = [
        {"x1": np.full((2, 2), i, np.float32), "x2": np.arange(4, dtype=np.float32).reshape(2, 2)}
        for i in range(5)
    ]
    results = ok(client(grpc_stack, "add", "add_common").infer(instances))
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], instances[i]["x1"] + instances[i]["x2"])


@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("shape", [(), (3,), (2, 3)], ids=["scalar", "1d", "2d"])
def test_numeric_round_trip(grpc_stack: GrpcStack, dtype: str, shape: tuple[int, ...]) -> None:
    value = sample(dtype, shape)
    sent = value[()] if shape == () else value  # a NumPy scalar for the 0-d case
    (result,) = ok(client(grpc_stack, "echo", "echo").infer({"x": sent}))
    y = result["y"]
    assert (y.dtype, y.shape) == (np.dtype(dtype), shape)
    np.testing.assert_array_equal(y, value)


def test_empty_and_non_contiguous_arrays(grpc_stack: GrpcStack) -> None:
    strided = np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2]
    results = ok(
        client(grpc_stack, "echo", "echo").infer(
            [{"x": np.zeros((0, 3), np.float64)}, {"x": strided}, {"x": np.asfortranarray(strided)}]
        )
    )
    assert results[0]["y"].shape == (0, 3)
    np.testing.assert_array_equal(results[1]["y"], strided)
    np.testing.assert_array_equal(results[2]["y"], strided)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text \u00e9\u4e2d", "text \u00e9\u4e2d"),
        ("", ""),
        (b"\x00\x01\xff", b"\x00\x01\xff"),
        (b"", b""),
        (True, np.array([True])),
        (-3, np.array([-3], np.int64)),
        (2.5, np.array([2.5], np.float64)),
    ],
)
def test_python_value_round_trip(grpc_stack: GrpcStack, value: object, expected: object) -> None:
    (result,) = ok(client(grpc_stack, "echo", "echo").infer({"x": value}))
    y = result["y"]
    if isinstance(expected, np.ndarray):
        assert (y.dtype, y.shape) == (expected.dtype, (1,))
        np.testing.assert_array_equal(y, expected)
    else:
        assert type(y) is type(expected)
        assert y == expected


def test_two_inputs_and_outputs(grpc_stack: GrpcStack) -> None:
    pair = client(grpc_stack, "echo", "pair")
    (result,) = ok(pair.infer({"a": "s", "b": np.uint8(9), "extra": 1}))
    assert result["a"] == "s"
    assert result["b"] == np.uint8(9)


def test_a_failing_instance_fails_alone(grpc_stack: GrpcStack) -> None:
    results = ok(
        client(grpc_stack, "echo", "checked").infer(
            [{"x": np.int32(1)}, {"x": np.int32(-1)}, {"x": np.int32(2)}]
        )
    )
    assert (results[0]["y"], results[2]["y"]) == (1, 2)
    assert "x must not be negative" in results[1]["error"]


def predict(stack: GrpcStack, request: pb.PredictRequest, timeout: float = 30) -> pb.PredictReply:
    with grpc.insecure_channel(stack.address) as channel:
        stub = pb_grpc.MSServiceStub(channel)  # type: ignore[no-untyped-call]
        reply: pb.PredictReply = stub.Predict(request, timeout=timeout)
        return reply


def request_of(servable: str, method: str, *instances: dict[str, pb.Tensor]) -> pb.PredictRequest:
    request = pb.PredictRequest()
    request.servable_spec.name, request.servable_spec.method_name = servable, method
    for items in instances:
        message = request.instances.add()
        for name, item in items.items():
            message.items[name].CopyFrom(item)
    return request


def float_tensor(shape: list[int], nbytes: int | None = None) -> pb.Tensor:
    item = pb.Tensor(
        dtype=pb.MS_FLOAT32, data=bytes(4 * int(np.prod(shape)) if nbytes is None else nbytes)
    )
    item.shape.dims.extend(shape)
    return item


def codes(reply: pb.PredictReply) -> list[int]:
    return [error.error_code for error in reply.error_msg]


def test_error_codes_per_instance(grpc_stack: GrpcStack) -> None:
    good = {"x1": float_tensor([2, 2]), "x2": float_tensor([2, 2])}
    reply = predict(
        grpc_stack,
        request_of(
            "add",
            "add_common",
            good,
            {"x1": float_tensor([2, 2])},  # missing x2
            {"x1": float_tensor([2, 2], nbytes=12), "x2": float_tensor([2, 2])},  # bad size
            good,
        ),
    )
    assert reply.servable_spec.name == "add" and reply.servable_spec.method_name == "add_common"
    assert codes(reply) == [0, 2, 2, 0]
    assert b"Cannot find input x2 in instance input" in reply.error_msg[1].error_msg
    assert (
        reply.error_msg[2].error_msg
        == b"input x1: data size 12 does not match shape [2, 2] of float32 (16 bytes)"
    )
    assert [len(instance.items) for instance in reply.instances] == [1, 0, 0, 1]


@pytest.mark.parametrize(
    ("servable", "method", "version", "code", "needle"),
    [
        ("nope", "add_common", 0, 5, "servable is not available"),
        ("add", "nope", 0, 5, "method is not available"),
        ("add", "add_common", 7, 5, "not available"),
    ],
)
def test_whole_request_errors(
    grpc_stack: GrpcStack,
    servable: str,
    method: str,
    version: int,
    code: int,
    needle: str,
) -> None:
    request = request_of(servable, method, {"x1": float_tensor([2, 2]), "x2": float_tensor([2, 2])})
    request.servable_spec.version_number = version
    reply = predict(grpc_stack, request)
    assert codes(reply) == [code]
    assert needle in reply.error_msg[0].error_msg.decode()
    assert len(reply.instances) == 0
    assert needle in failed(
        Client(grpc_stack.address, servable, method, version).infer({"x1": 1.0})
    )


def test_same_error_for_every_instance_is_one_error(grpc_stack: GrpcStack) -> None:
    missing_x2 = {"x1": float_tensor([2, 2])}
    reply = predict(grpc_stack, request_of("add", "add_common", missing_x2, missing_x2))
    assert codes(reply) == [2]
    assert len(reply.instances) == 0
    assert predict(grpc_stack, request_of("add", "add_common")).error_msg[0].error_msg == (
        b"the request holds no instances"
    )


def test_messages_up_to_the_limit_pass_and_larger_ones_are_resource_exhausted(
    grpc_stack: GrpcStack,
) -> None:
    echo = client(grpc_stack, "echo", "echo")
    big = np.arange((MAX_MSG_MB * 1024 * 1024 - 4096) // 4, dtype=np.float32)
    (result,) = ok(echo.infer({"x": big}))
    np.testing.assert_array_equal(result["y"], big)
    too_big = np.zeros(MAX_MSG_MB * 1024 * 1024 // 4 + 1024, np.float32)
    error = failed(echo.infer({"x": too_big}))
    assert error.startswith("Grpc Error, (8, 'resource exhausted'): ")
    with pytest.raises(grpc.RpcError) as info:
        predict(grpc_stack, request_of("echo", "echo", {"x": float_tensor([too_big.size])}))
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    (after,) = ok(echo.infer({"x": np.int8(1)}))
    assert after["y"] == 1


def nap_request(seconds: float) -> pb.PredictRequest:
    item = pb.Tensor(dtype=pb.MS_FLOAT64, data=np.float64(seconds).tobytes())
    return request_of("slow", "nap", {"seconds": item})


def test_deadline_exceeded_and_the_gateway_stays_healthy(grpc_stack: GrpcStack) -> None:
    started = time.monotonic()
    error = failed(client(grpc_stack, "slow", "nap", timeout=0.3).infer({"seconds": 1.0}))
    assert time.monotonic() - started < 1.0
    assert error.startswith("Grpc Error, (4, 'deadline exceeded')")
    with pytest.raises(grpc.RpcError) as info:
        predict(grpc_stack, nap_request(1.0), timeout=0.3)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    test_add_one_instance(grpc_stack)
    assert health(grpc_stack, "") == health_pb2.HealthCheckResponse.SERVING
    (slept,) = ok(client(grpc_stack, "slow", "nap", timeout=30).infer({"seconds": 0.01}))
    assert slept["slept"] == 0.01


def nap_stats(stack: GrpcStack) -> v2.ModelStatistics:
    with grpc.insecure_channel(stack.address) as channel:
        stub = v2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        response = stub.ModelStatistics(v2.ModelStatisticsRequest(name="slow.nap"), timeout=10)
    (stats,) = response.model_stats
    return stats  # type: ignore[no-any-return]


def test_a_cancelled_call_withdraws_its_queued_instances(grpc_stack: GrpcStack) -> None:
    idle_deadline = time.monotonic() + 10
    while time.monotonic() < idle_deadline:  # earlier naps may still run
        before = nap_stats(grpc_stack)
        time.sleep(0.3)
        if nap_stats(grpc_stack).execution_count == before.execution_count:
            break
    with grpc.insecure_channel(grpc_stack.address) as channel:
        nap = pb_grpc.MSServiceStub(channel).Predict  # type: ignore[no-untyped-call]
        running = [
            nap.future(nap_request(0.4), timeout=30) for _ in range(2)
        ]  # the worker's 2 credits
        time.sleep(0.1)
        queued = nap.future(nap_request(0.4), timeout=30)
        time.sleep(0.1)
        assert queued.cancel()
        for call in running:
            assert codes(call.result()) == []
    time.sleep(0.5)
    after = nap_stats(grpc_stack)
    assert after.execution_count - before.execution_count == 2
    assert after.inference_count - before.inference_count == 2


def test_async_calls(grpc_stack: GrpcStack) -> None:
    add = client(grpc_stack, "add", "add_common")
    pending = [
        add.infer_async({"x1": np.full((2, 2), i, np.float32), "x2": np.ones((2, 2), np.float32)})
        for i in range(8)
    ]
    for i, answer in enumerate(pending):
        (result,) = ok(answer.result())
        np.testing.assert_array_equal(result["y"], np.full((2, 2), i + 1, np.float32))
    late = client(grpc_stack, "slow", "nap").infer_async({"seconds": 1.0}, timeout=0.2)
    assert failed(late.result()).startswith("Grpc Error, (4, 'deadline exceeded')")


def test_transport_failures_are_results_not_exceptions() -> None:
    nowhere = Client(f"127.0.0.1:{free_port()}", "add", "add_common", timeout=5)
    error = failed(nowhere.infer({"x1": 1}))
    assert error.startswith("Grpc Error, (14, 'unavailable'): ")
    assert failed(nowhere.infer_async({"x1": 1}).result()) == error
    nowhere.close()


def health(stack: GrpcStack, service: str) -> int:
    with grpc.insecure_channel(stack.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        status: int = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        return status


def test_health_per_servable_and_service(grpc_stack: GrpcStack) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in (
        "",
        "add",
        "echo",
        "mindspore.serving.proto.MSService",
        "inference.GRPCInferenceService",
    ):
        assert health(grpc_stack, service) == serving, service
    with pytest.raises(grpc.RpcError) as info:
        health(grpc_stack, "nope")
    assert info.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_reflection_lists_and_describes_the_services(grpc_stack: GrpcStack) -> None:
    with grpc.insecure_channel(grpc_stack.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="inference.GRPCInferenceService"
            ),
        ]
        listed, described = list(stub.ServerReflectionInfo(iter(requests), timeout=10))
    names = {service.name for service in listed.list_services_response.service}
    assert names == {
        "mindspore.serving.proto.MSService",
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    (raw,) = described.file_descriptor_response.file_descriptor_proto
    file = descriptor_pb2.FileDescriptorProto.FromString(raw)
    assert file.package == "inference"
    assert "ModelInfer" in {method.name for method in file.service[0].method}
