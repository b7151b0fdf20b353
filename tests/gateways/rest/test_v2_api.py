"""Open Inference Protocol (V2) REST through real processes, driven by tritonclient.http."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.gateways.rest.test_json_numbers import strict_loads
from tests.gateways.rest_stack import RestStack, call


@pytest.fixture(scope="module")
def client(rest_stack: RestStack) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(f"127.0.0.1:{rest_stack.plain_port}")
    yield client
    client.close()


def tensor(
    name: str, array: np.ndarray, datatype: str, *, binary: bool = True
) -> triton.InferInput:
    item = triton.InferInput(name, list(array.shape), datatype)
    item.set_data_from_numpy(array, binary_data=binary)
    return item


def add_inputs(batch: int, *, binary: bool = True) -> list[triton.InferInput]:
    x1 = np.arange(batch * 4, dtype=np.float32).reshape(batch, 2, 2)
    return [tensor("x1", x1, "FP32", binary=binary), tensor("x2", x1 * 10, "FP32", binary=binary)]


def test_server_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "msq"
    assert set(metadata["extensions"]) >= {"binary_tensor_data", "statistics"}


@pytest.mark.parametrize(
    ("model", "ready"),
    [
        ("add.add_common", True),
        ("slow", True),
        ("slow.nap", True),
        ("add", False),
        ("nothing", False),
    ],
)
def test_model_readiness(client: triton.InferenceServerClient, model: str, ready: bool) -> None:
    assert client.is_model_ready(model) is ready


def test_model_metadata_and_config(client: triton.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("digits.predict_image", model_version="1")
    assert metadata["name"] == "digits.predict_image"
    assert metadata["versions"] == ["1"]
    assert [output["name"] for output in metadata["outputs"]] == ["label", "scores", "classes"]
    config = client.get_model_config("add.add_common")
    assert config["name"] == "add.add_common"
    assert [item["name"] for item in config["input"]] == ["x1", "x2"]
    assert config["max_batch_size"] >= 0


@pytest.mark.parametrize("batch", [1, 3])
def test_infer_with_binary_data(client: triton.InferenceServerClient, batch: int) -> None:
    inputs = add_inputs(batch)
    result = client.infer("add.add_common", inputs, request_id="req-7")
    expected = np.arange(batch * 4, dtype=np.float32).reshape(batch, 2, 2) * 11
    np.testing.assert_array_equal(result.as_numpy("y"), expected)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "add.add_common",
        "1",
        "req-7",
    )
    assert response["outputs"][0]["parameters"] == {"binary_data_size": batch * 16}


def test_infer_with_json_data(client: triton.InferenceServerClient) -> None:
    outputs = [triton.InferRequestedOutput("y", binary_data=False)]
    result = client.infer("add.add_common", add_inputs(2, binary=False), outputs=outputs)
    assert result.get_response()["outputs"][0]["data"] == (np.arange(8) * 11.0).tolist()
    np.testing.assert_array_equal(
        result.as_numpy("y"), np.arange(8, dtype=np.float32).reshape(2, 2, 2) * 11
    )


def test_a_model_computing_nan_and_infinities_answers_strict_json(
    client: triton.InferenceServerClient, rest_stack: RestStack
) -> None:
    x1 = np.array([[[np.inf, np.inf], [-np.inf, 1]]], np.float32)
    x2 = np.array([[[-np.inf, 1], [1, 1]]], np.float32)
    inputs = [tensor("x1", x1, "FP32"), tensor("x2", x2, "FP32")]
    outputs = [triton.InferRequestedOutput("y", binary_data=False)]
    result = client.infer("add.add_common", inputs, outputs=outputs)
    assert result.get_response()["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity", 2.0]
    expected = np.array([[[np.nan, np.inf], [-np.inf, 2]]], np.float32)
    np.testing.assert_array_equal(result.as_numpy("y"), expected)
    body, length = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    headers = {"Inference-Header-Content-Length": str(length)}
    path = "/v2/models/add.add_common/infer"
    status, _, answer = call(rest_stack.plain(), "POST", path, body, headers)
    assert status == 200
    assert strict_loads(answer)["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity", 2.0]


def test_a_non_finite_literal_in_the_request_is_a_400(rest_stack: RestStack) -> None:
    item = {"name": "x1", "shape": [1, 2, 2], "datatype": "FP32", "data": [1, 2, 3, "NaN"]}
    body = json.dumps({"inputs": [item]}).replace('"NaN"', "NaN").encode()
    path = "/v2/models/add.add_common/infer"
    status, _, answer = call(rest_stack.plain(), "POST", path, body)
    assert (status, json.loads(answer)) == (
        400,
        {
            "error": "malformed JSON in the inference request: NaN at $.inputs[0].data[3] "
            "is not valid JSON: non-finite numbers are refused"
        },
    )


@pytest.mark.parametrize("binary", [True, False])
def test_infer_bytes(client: triton.InferenceServerClient, binary: bool) -> None:
    words = np.array([b"caf\xc3\xa9", b"\x00\x01" if binary else b"plain"], dtype=np.object_)
    outputs = [triton.InferRequestedOutput("y", binary_data=binary)]
    result = client.infer(
        "echo.echo", [tensor("x", words, "BYTES", binary=binary)], outputs=outputs
    )
    expected = words.tolist() if binary else ["café", "plain"]  # JSON text comes back as str
    assert result.as_numpy("y").tolist() == expected


def test_gzip_request_bodies_are_inflated(client: triton.InferenceServerClient) -> None:
    result = client.infer("add.add_common", add_inputs(1), request_compression_algorithm="gzip")
    assert result.as_numpy("y")[0, 1, 1] == 33.0


def test_unknown_model_is_a_404_exception(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer("nothing.at_all", add_inputs(1))
    assert info.value.status() == "404"
    assert "nothing.at_all" in info.value.message()


def test_bad_input_is_a_400_exception(client: triton.InferenceServerClient) -> None:
    wrong = [tensor("x1", np.ones((1, 2, 2), np.float32), "FP32")]  # x2 missing
    with pytest.raises(InferenceServerException) as info:
        client.infer("add.add_common", wrong)
    assert info.value.status() == "400"
    assert "x2" in info.value.message()


def test_a_passed_deadline_is_a_504_exception(client: triton.InferenceServerClient) -> None:
    nap = tensor("seconds", np.array([2.0]), "FP64")
    with pytest.raises(InferenceServerException) as info:
        client.infer("slow", [nap], timeout=300_000)  # microseconds
    assert info.value.status() == "504"


def test_statistics_count_instances(client: triton.InferenceServerClient) -> None:
    def count() -> int:
        stats = client.get_inference_statistics("echo.pair")["model_stats"]
        return sum(entry["inference_count"] for entry in stats)

    before = count()
    pair = [
        tensor("a", np.array([[1], [2]], np.int32), "INT32"),
        tensor("b", np.zeros((2, 1), np.int8), "INT8"),
    ]
    client.infer("echo.pair", pair)
    assert count() - before == 2


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/nothing", 404),
        ("GET", "/v2/models/add.add_common/infer", 405),
        ("DELETE", "/v2/health/live", 405),
        ("GET", "/v2/models/nothing", 404),
        ("GET", "/v2/models/add", 404),
        ("GET", "/v2/models/add.add_common/versions/x", 400),
        ("POST", "/v2/models/add.add_common/infer", 400),
    ],
)
def test_every_error_is_json_with_an_error_message(
    rest_stack: RestStack, method: str, path: str, status: int
) -> None:
    answer_status, headers, body = call(
        rest_stack.plain(), method, path, b"{}" if method == "POST" else None
    )
    assert (answer_status, headers["content-type"]) == (status, "application/json")
    document = json.loads(body)
    assert list(document) == ["error"]
    assert document["error"]


def test_v2_bodies_over_the_limit_are_413(rest_stack: RestStack) -> None:
    big = gzip.compress(b" " * (2 * 1024 * 1024))  # small on the wire, too large inflated
    connection = rest_stack.strict()
    connection.request(
        "POST", "/v2/models/add.add_common/infer", body=big, headers={"Content-Encoding": "gzip"}
    )
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read()) == {"error": "http message is bigger than 1048576 bytes"}
