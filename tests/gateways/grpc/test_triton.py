"""msq-grpc-gateway's Open Inference Protocol (V2) through `tritonclient.grpc`, with real broker,
worker and gateway processes."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from msq.proto import grpc_predict_v2_pb2 as v2
from msq.proto import grpc_predict_v2_pb2_grpc as v2_grpc
from tests.gateways.grpc_processes import GrpcStack

DATATYPES = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


@pytest.fixture(scope="module")
def client(grpc_stack: GrpcStack) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(grpc_stack.address)


def infer_input(name: str, array: np.ndarray, datatype: str) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def test_health(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("add.add_common")
    assert client.is_model_ready("add.add_common", "1")
    assert client.is_model_ready("slow")  # the bare name of a single-method servable
    assert not client.is_model_ready("echo")  # three methods: the bare name names none
    assert not client.is_model_ready("add.add_common", "2")
    assert not client.is_model_ready("nope")


def test_server_metadata(client: triton.InferenceServerClient) -> None:
    metadata = client.get_server_metadata()
    assert metadata.name == "msq"
    assert list(metadata.extensions) == ["model_configuration", "model_repository", "statistics"]


def test_model_metadata(client: triton.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("add.add_common")
    assert (metadata.name, list(metadata.versions), metadata.platform) == (
        "add.add_common",
        ["1"],
        "mindspore_mindir",
    )
    inputs = [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs]
    assert inputs == [("x1", "FP32", [-1, 2, 2]), ("x2", "FP32", [-1, 2, 2])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("y", "FP32", [-1, 2, 2])
    ]


def test_model_config(client: triton.InferenceServerClient) -> None:
    config = client.get_model_config("add.add_common", as_json=True)["config"]
    assert config["name"] == "add.add_common"
    assert config["max_batch_size"] == 64
    assert config["input"] == [
        {"name": "x1", "data_type": "TYPE_FP32", "dims": ["2", "2"]},
        {"name": "x2", "data_type": "TYPE_FP32", "dims": ["2", "2"]},
    ]
    assert config["output"] == [{"name": "y", "data_type": "TYPE_FP32", "dims": ["2", "2"]}]
    assert int(config["dynamic_batching"]["preferred_batch_size"][0]) >= 1


def test_infer_fp32_batch(client: triton.InferenceServerClient) -> None:
    x1 = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    x2 = np.full((3, 2, 2), 0.5, np.float32)
    result = client.infer(
        "add.add_common", [infer_input("x1", x1, "FP32"), infer_input("x2", x2, "FP32")]
    )
    np.testing.assert_array_equal(result.as_numpy("y"), x1 + x2)
    response = result.get_response()
    assert (response.model_name, response.model_version) == ("add.add_common", "1")


@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_every_numeric_datatype_round_trips(
    client: triton.InferenceServerClient, datatype: str
) -> None:
    array: np.ndarray = (np.arange(6) % 3).astype(DATATYPES[datatype]).reshape(2, 3)
    result = client.infer("echo.echo", [infer_input("x", array, datatype)])
    y = result.as_numpy("y")
    assert (y.dtype, y.shape) == (array.dtype, (2, 3))
    np.testing.assert_array_equal(y, array)


def test_bytes_round_trip(client: triton.InferenceServerClient) -> None:
    blobs = np.array([b"\x00\xffab", b"", "caf\u00e9".encode()], dtype=np.object_)
    result = client.infer("echo.echo", [infer_input("x", blobs, "BYTES")])
    assert result.as_numpy("y").tolist() == blobs.tolist()
    assert result.get_output("y").datatype == "BYTES"


def test_requested_outputs_and_request_id(client: triton.InferenceServerClient) -> None:
    a = np.array([[1], [2]], np.int32)
    b = np.array([b"p", b"q"], dtype=np.object_)
    result = client.infer(
        "echo.pair",
        [infer_input("a", a, "INT32"), infer_input("b", b, "BYTES")],
        outputs=[triton.InferRequestedOutput("b")],
        request_id="req-7",
    )
    assert result.get_response().id == "req-7"
    assert result.as_numpy("a") is None
    assert result.as_numpy("b").tolist() == [b"p", b"q"]


def triton_error(call: object, *args: object, **kwargs: object) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


def test_unknown_model_is_not_found(client: triton.InferenceServerClient) -> None:
    x = infer_input("x", np.zeros((1, 2), np.float32), "FP32")
    error = triton_error(client.infer, "nope", [x])
    assert error.status() == "StatusCode.NOT_FOUND"
    assert "model 'nope' is not available" in error.message()
    assert triton_error(client.get_model_metadata, "nope").status() == "StatusCode.NOT_FOUND"
    assert triton_error(client.get_model_config, "echo").status() == "StatusCode.NOT_FOUND"


def test_bad_inputs_are_invalid_argument(client: triton.InferenceServerClient) -> None:
    x = infer_input("x3", np.zeros((1, 2, 2), np.float32), "FP32")
    error = triton_error(client.infer, "add.add_common", [x])
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "unexpected inference input 'x3'" in error.message()
    x1 = infer_input("x1", np.zeros((1, 3, 3), np.float32), "FP32")
    x2 = infer_input("x2", np.zeros((1, 3, 3), np.float32), "FP32")
    assert triton_error(client.infer, "add.add_common", [x1, x2]).status() == (
        "StatusCode.INVALID_ARGUMENT"
    )


def test_a_failing_row_fails_the_request(client: triton.InferenceServerClient) -> None:
    x = infer_input("x", np.array([3, -1], np.int64), "INT64")
    error = triton_error(client.infer, "echo.checked", [x])
    assert error.status() == "StatusCode.INTERNAL"
    assert "instance 1: " in error.message()
    assert "x must not be negative" in error.message()


def test_deadlines(client: triton.InferenceServerClient) -> None:
    seconds = infer_input("seconds", np.array([1.0]), "FP64")
    late = triton_error(client.infer, "slow.nap", [seconds], client_timeout=0.3)
    assert late.status() == "StatusCode.DEADLINE_EXCEEDED"
    by_parameter = triton_error(client.infer, "slow.nap", [seconds], timeout=300_000)
    assert by_parameter.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert client.is_server_ready()


def test_statistics(client: triton.InferenceServerClient) -> None:
    x1 = infer_input("x1", np.ones((2, 2, 2), np.float32), "FP32")
    x2 = infer_input("x2", np.ones((2, 2, 2), np.float32), "FP32")
    before = client.get_inference_statistics("add.add_common").model_stats
    client.infer("add.add_common", [x1, x2])
    (after,) = client.get_inference_statistics("add.add_common").model_stats
    counted = before[0].inference_count if before else 0
    assert after.inference_count == counted + 2
    assert (after.name, after.version) == ("add.add_common", "1")
    assert after.execution_count >= 1
    assert after.inference_stats.compute_infer.count == after.execution_count
    every = client.get_inference_statistics().model_stats
    assert "add.add_common" in {stats.name for stats in every}


def test_typed_contents(grpc_stack: GrpcStack) -> None:
    request = v2.ModelInferRequest(model_name="echo.echo")
    tensor = request.inputs.add(name="x", datatype="INT16", shape=[2, 2])
    tensor.contents.int_contents.extend([1, -2, 3, -4])
    with grpc.insecure_channel(grpc_stack.address) as channel:
        stub = v2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        response = stub.ModelInfer(request, timeout=30)
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("y", "INT16", [2, 2])
    ]
    assert response.raw_output_contents[0] == np.array([1, -2, 3, -4], np.int16).tobytes()
