"""The gRPC gateway's deadline rule through real processes: the gRPC deadline and the V2
`timeout` parameter each alone, the smaller of both, the gateway's default, and bad V2
timeouts refused with INVALID_ARGUMENT (a `timeout` of 0 included).

`slow` naps for the seconds it is given; a request whose deadline is shorter than its nap is
answered "timed out" well before the nap ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from msq.proto import grpc_predict_v2_pb2 as v2
from msq.proto import grpc_predict_v2_pb2_grpc as v2_grpc
from msq.proto import ms_service_pb2 as pb
from msq.proto import ms_service_pb2_grpc as pb_grpc
from tests.gateways.grpc_processes import GrpcStack, gateway
from tests.processes import start_all, stop_all

#: The default deadline of the extra gateway started here.
SHORT_DEFAULT_S = 0.3
PARAMETER = "parameter 'timeout' (microseconds)"


def v2_nap(seconds: float, **timeout: object) -> v2.ModelInferRequest:
    """A V2 request asking `slow` to nap; `timeout` sets the parameter, e.g. int64_param=5."""
    request = v2.ModelInferRequest(model_name="slow")
    request.inputs.add(name="seconds", datatype="FP64", shape=[1])
    request.raw_input_contents.append(np.float64(seconds).tobytes())
    for kind, value in timeout.items():
        setattr(request.parameters["timeout"], kind, value)
    return request


def infer(
    address: str, request: v2.ModelInferRequest, deadline_s: float | None = None
) -> tuple[grpc.StatusCode, str, float]:
    """Call ModelInfer: the status code, its details (the output's bytes when OK), the time."""
    started = time.monotonic()
    with grpc.insecure_channel(address) as channel:
        stub = v2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            response = stub.ModelInfer(request, timeout=deadline_s)
        except grpc.RpcError as error:
            return error.code(), error.details(), time.monotonic() - started
    return grpc.StatusCode.OK, repr(response.raw_output_contents[0]), time.monotonic() - started


@pytest.fixture(scope="module")
def short_default(grpc_stack: GrpcStack) -> Iterator[str]:
    """A gateway whose default deadline is `SHORT_DEFAULT_S`; its address."""
    proc, address = gateway(
        grpc_stack.frontend, "--default-timeout", str(SHORT_DEFAULT_S), name="grpc-short-default"
    )
    procs = start_all([proc])
    yield address
    stop_all(procs)


@pytest.mark.parametrize(
    ("deadline_s", "timeout"),
    [
        (None, {"int64_param": 200_000}),  # the parameter alone
        (None, {"uint64_param": 200_000}),
        (30.0, {"int64_param": 200_000}),  # both: the parameter is smaller
        (0.2, {"int64_param": 30_000_000}),  # both: the gRPC deadline is smaller
        (0.2, {}),  # the gRPC deadline alone
    ],
)
def test_v2_the_smallest_timeout_given_wins(
    grpc_stack: GrpcStack, deadline_s: float | None, timeout: dict[str, int]
) -> None:
    code, details, took = infer(grpc_stack.address, v2_nap(1.0, **timeout), deadline_s)
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED, details
    assert took < 0.9


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        ({"int64_param": 0}, f"{PARAMETER} must be a positive number, not 0"),
        ({"uint64_param": 0}, f"{PARAMETER} must be a positive number, not 0"),
        ({"int64_param": -5}, f"{PARAMETER} must be a positive number, not -5"),
        ({"string_param": "1s"}, f"{PARAMETER} must be a positive integer, not '1s'"),
        ({"double_param": 1.5}, f"{PARAMETER} must be a positive integer, not 1.5"),
        ({"bool_param": True}, f"{PARAMETER} must be a positive integer, not True"),
    ],
)
def test_v2_bad_timeouts_are_invalid_argument(
    grpc_stack: GrpcStack, timeout: dict[str, object], message: str
) -> None:
    code, details, _ = infer(grpc_stack.address, v2_nap(0.0, **timeout), 30.0)
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, message)


def test_without_a_timeout_the_gateways_default_applies(short_default: str) -> None:
    code, details, took = infer(short_default, v2_nap(1.0))
    assert (code, took < 0.9) == (grpc.StatusCode.DEADLINE_EXCEEDED, True), details
    assert details.startswith("request timed out")
    request = pb.PredictRequest()
    request.servable_spec.name, request.servable_spec.method_name = "slow", "nap"
    item = pb.Tensor(dtype=pb.MS_FLOAT64, data=np.float64(1.0).tobytes())
    request.instances.add().items["seconds"].CopyFrom(item)
    started = time.monotonic()
    with grpc.insecure_channel(short_default) as channel:
        stub = pb_grpc.MSServiceStub(channel)  # type: ignore[no-untyped-call]
        reply = stub.Predict(request)  # no gRPC deadline: MindSpore Serving's error reply
    assert time.monotonic() - started < 0.9
    (error,) = reply.error_msg
    assert error.error_code == 3
    assert error.error_msg.decode().startswith("request timed out")


def test_a_clients_timeout_beats_a_shorter_default(short_default: str) -> None:
    code, details, _ = infer(short_default, v2_nap(0.5, int64_param=10_000_000))
    assert (code, details) == (grpc.StatusCode.OK, repr(np.float64(0.5).tobytes()))
    code, details, _ = infer(short_default, v2_nap(0.5), 10.0)
    assert (code, details) == (grpc.StatusCode.OK, repr(np.float64(0.5).tobytes()))
