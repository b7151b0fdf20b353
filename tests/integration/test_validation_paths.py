"""One tensor validation rule, one answer: an input of the wrong shape (or size) for `add`
fails with the same message through every protocol — MindSpore Serving gRPC and REST, V2 gRPC
and V2 REST — on the session's running gRPC and REST stacks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from msq.client import Client
from tests.gateways.grpc_processes import GrpcStack
from tests.gateways.rest_stack import RestStack, post_json

Path = Callable[[GrpcStack, RestStack, np.ndarray, np.ndarray], tuple[object, str]]


def ms_grpc(grpc: GrpcStack, _: RestStack, x1: np.ndarray, x2: np.ndarray) -> tuple[object, str]:
    results = Client(grpc.address, "add", "add_common").infer({"x1": x1, "x2": x2})
    assert isinstance(results, dict), results  # one failed instance: the request failed
    ((key, message),) = results.items()
    return key, message


def ms_rest(_: GrpcStack, rest: RestStack, x1: np.ndarray, x2: np.ndarray) -> tuple[object, str]:
    document = {"instances": [{"x1": x1.tolist(), "x2": x2.tolist()}]}
    status, answer = post_json(rest.plain(), "/model/add:add_common", document)
    ((key, message),) = answer.items()  # one failed instance: the request failed
    return (status, key), message


def _v2_inputs(module: object, x1: np.ndarray, x2: np.ndarray) -> list[object]:
    inputs = []
    for name, array in (("x1", x1), ("x2", x2)):
        tensor = module.InferInput(name, [1, *array.shape], "FP32")  # type: ignore[attr-defined]
        tensor.set_data_from_numpy(array[np.newaxis])
        inputs.append(tensor)
    return inputs


def v2_grpc(grpc: GrpcStack, _: RestStack, x1: np.ndarray, x2: np.ndarray) -> tuple[object, str]:
    client = triton_grpc.InferenceServerClient(grpc.address)
    with pytest.raises(InferenceServerException) as info:
        client.infer("add.add_common", _v2_inputs(triton_grpc, x1, x2))
    return info.value.status(), info.value.message()


def v2_rest(_: GrpcStack, rest: RestStack, x1: np.ndarray, x2: np.ndarray) -> tuple[object, str]:
    client = triton_http.InferenceServerClient(f"127.0.0.1:{rest.plain_port}")
    try:
        with pytest.raises(InferenceServerException) as info:
            client.infer("add.add_common", _v2_inputs(triton_http, x1, x2))
    finally:
        client.close()
    return info.value.status(), info.value.message()


#: Each path and how it marks a failed request.
PATHS = [
    pytest.param(ms_grpc, "error", id="ms-grpc"),
    pytest.param(ms_rest, (200, "error_msg"), id="ms-rest"),
    pytest.param(v2_grpc, "StatusCode.INVALID_ARGUMENT", id="v2-grpc"),
    pytest.param(v2_rest, "400", id="v2-rest"),
]


@pytest.mark.parametrize(("path", "marker"), PATHS)
@pytest.mark.parametrize(
    ("x1", "message"),
    [
        (
            np.ones(4, np.float32),
            "Given model input x1 (index 0) shape [4] not match the shape [2, 2] defined in model",
        ),
        (
            np.ones((1, 2, 2), np.float32),
            "Given model input x1 (index 0) shape [1, 2, 2] not match the shape [2, 2] defined "
            "in model",
        ),
        (
            np.ones(3, np.float32),
            "Given model input x1 (index 0) size 12 not match the size 16 defined in model",
        ),
    ],
    ids=["right-size-wrong-shape", "right-size-extra-dim", "wrong-size"],
)
def test_every_path_gives_the_same_answer(
    grpc_stack: GrpcStack,
    rest_stack: RestStack,
    path: Path,
    marker: object,
    x1: np.ndarray,
    message: str,
) -> None:
    assert path(grpc_stack, rest_stack, x1, np.ones((2, 2), np.float32)) == (marker, message)
