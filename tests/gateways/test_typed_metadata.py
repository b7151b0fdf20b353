"""Declared method types over both gateways, with real processes: tritonclient (gRPC and HTTP)
builds a request for `digits.predict` from its V2 metadata alone and gets the right labels; V2
configs carry the data types; a request that breaks a declared type gets the validation
message on every path."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from sklearn.datasets import load_digits
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from tests.gateways.grpc_processes import GrpcStack
from tests.gateways.rest_stack import RestStack, post_json

#: `load_digits()` indices of the last image of each digit 0..9 (each classified right).
PICKS = (1793, 1774, 1783, 1770, 1791, 1787, 1773, 1785, 1796, 1795)
LABELS = list(range(10))
OUTPUTS = [("label", "INT64", [-1]), ("scores", "FP32", [-1, 3]), ("classes", "INT64", [-1, 3])]
WRONG_DTYPE = (
    "Given model input pixels (index 0) data type float64 not match the data type float32 "
    "defined in model"
)
WRONG_SHAPE = (
    "Given model input pixels (index 0) shape [64] not match the shape [8, 8] defined in model"
)


@pytest.fixture(scope="module")
def grpc_client(grpc_stack: GrpcStack) -> triton_grpc.InferenceServerClient:
    return triton_grpc.InferenceServerClient(grpc_stack.address)


@pytest.fixture(scope="module")
def http_client(rest_stack: RestStack) -> Iterator[triton_http.InferenceServerClient]:
    client = triton_http.InferenceServerClient(f"127.0.0.1:{rest_stack.plain_port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """The picked digits' pixels as `load_digits` gives them (float64 [10, 8, 8])."""
    return np.asarray(load_digits().images)[list(PICKS)]


def described(tensors: Iterable[Any]) -> list[tuple[str, str, list[int]]]:
    """(name, datatype, shape) of metadata tensors, from gRPC messages or HTTP JSON."""
    return [
        (t["name"], t["datatype"], list(t["shape"]))
        if isinstance(t, dict)
        else (t.name, t.datatype, list(t.shape))
        for t in tensors
    ]


def batch_from_metadata(
    metadata: Sequence[tuple[str, str, list[int]]], values: np.ndarray
) -> tuple[str, str, np.ndarray]:
    """The one input of a batching model, built from its metadata alone: `values` (one row
    per instance) in the declared datatype and shape, the batch dim (-1) first."""
    ((name, datatype, shape),) = metadata
    assert shape[0] == -1 and -1 not in shape[1:]
    array = np.asarray(values, dtype=triton_to_np_dtype(datatype)).reshape(len(values), *shape[1:])
    return name, datatype, array


def test_grpc_metadata_alone_builds_a_request_that_gets_the_right_labels(
    grpc_client: triton_grpc.InferenceServerClient, images: np.ndarray
) -> None:
    metadata = grpc_client.get_model_metadata("digits.predict")
    assert described(metadata.inputs) == [("pixels", "FP32", [-1, 8, 8])]
    assert described(metadata.outputs) == OUTPUTS
    name, datatype, array = batch_from_metadata(described(metadata.inputs), images)
    tensor = triton_grpc.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    result = grpc_client.infer("digits.predict", [tensor])
    assert result.as_numpy("label").tolist() == LABELS
    assert result.as_numpy("classes")[:, 0].tolist() == LABELS
    assert result.as_numpy("scores").dtype == np.float32


def test_http_metadata_alone_builds_a_request_that_gets_the_right_labels(
    http_client: triton_http.InferenceServerClient, images: np.ndarray
) -> None:
    metadata = http_client.get_model_metadata("digits.predict")
    assert described(metadata["inputs"]) == [("pixels", "FP32", [-1, 8, 8])]
    assert described(metadata["outputs"]) == OUTPUTS
    name, datatype, array = batch_from_metadata(described(metadata["inputs"]), images)
    tensor = triton_http.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    result = http_client.infer("digits.predict", [tensor])
    assert result.as_numpy("label").tolist() == LABELS


def test_image_method_metadata_and_v2_configs_carry_the_declared_types(
    grpc_client: triton_grpc.InferenceServerClient,
    http_client: triton_http.InferenceServerClient,
) -> None:
    image = grpc_client.get_model_metadata("digits.predict_image")
    assert described(image.inputs) == [("image", "BYTES", [-1])]
    assert described(image.outputs) == OUTPUTS
    outputs = [
        {"name": "label", "data_type": "TYPE_INT64", "dims": []},
        {"name": "scores", "data_type": "TYPE_FP32", "dims": [3]},
        {"name": "classes", "data_type": "TYPE_INT64", "dims": [3]},
    ]
    config = http_client.get_model_config("digits.predict")
    assert config["input"] == [{"name": "pixels", "data_type": "TYPE_FP32", "dims": [8, 8]}]
    assert config["output"] == outputs
    assert config["max_batch_size"] == 64
    config = http_client.get_model_config("digits.predict_image")
    assert config["input"] == [{"name": "image", "data_type": "TYPE_STRING", "dims": []}]
    grpc_config = grpc_client.get_model_config("digits.predict", as_json=True)["config"]
    assert [(t["name"], t["data_type"]) for t in grpc_config["input"]] == [("pixels", "TYPE_FP32")]
    assert [t["data_type"] for t in grpc_config["output"]] == [o["data_type"] for o in outputs]


@pytest.mark.parametrize(
    ("array", "datatype", "message"),
    [
        (np.zeros((1, 8, 8), np.float64), "FP64", WRONG_DTYPE),
        (np.zeros((1, 64), np.float32), "FP32", WRONG_SHAPE),
    ],
)
def test_a_request_breaking_the_declared_type_gets_the_validation_message(
    grpc_client: triton_grpc.InferenceServerClient,
    array: np.ndarray,
    datatype: str,
    message: str,
) -> None:
    tensor = triton_grpc.InferInput("pixels", list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    with pytest.raises(InferenceServerException) as error:
        grpc_client.infer("digits.predict", [tensor])
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert error.value.message() == message


def test_mindspore_serving_rest_checks_the_declared_type_too(
    rest_stack: RestStack, images: np.ndarray
) -> None:
    zero = images[0]
    ints = zero.astype(np.int64).tolist()  # JSON integers are int32
    status, answer = post_json(
        rest_stack.plain(), "/model/digits:predict", {"instances": [{"pixels": ints}]}
    )
    assert status == 200
    assert answer == {"error_msg": WRONG_DTYPE.replace("float64", "int32")}
    floats = zero.astype(np.float32).tolist()  # JSON floats are float32
    status, answer = post_json(
        rest_stack.plain(), "/model/digits:predict", {"instances": [{"pixels": floats}]}
    )
    assert (status, answer["instances"][0]["label"]) == (200, 0)
