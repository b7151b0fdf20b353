"""Request encoding and reply checks of every client path (no servers)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from msq.benchmarks import payloads
from msq.benchmarks.load import CallError
from msq.gateways.rest.ms_json import parse_request
from msq.proto import ms_service_pb2 as ms_pb
from msq.proto.codec import from_wire
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Reply, RowFailure

X1 = np.arange(4, dtype=np.float32).reshape(2, 2)
X2 = np.full((2, 2), 0.5, dtype=np.float32)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00"


def _ms_reply(errors: list[tuple[int, bytes]], instances: int) -> bytes:
    reply = ms_pb.PredictReply()
    for _ in range(instances):
        reply.instances.add()
    for code, message in errors:
        reply.error_msg.add(error_code=code, error_msg=message)
    return bytes(reply.SerializeToString())


def test_ms_grpc_request_carries_values() -> None:
    data = payloads.ms_grpc_request("add", "add_common", [{"x1": X1, "x2": X2}, {"img": PNG}])
    request = ms_pb.PredictRequest.FromString(data)
    assert request.servable_spec.name == "add"
    assert request.servable_spec.method_name == "add_common"
    first, second = request.instances
    assert first.items["x1"].dtype == 11  # MS_FLOAT32
    assert list(first.items["x1"].shape.dims) == [2, 2]
    np.testing.assert_array_equal(payloads.ms_tensor_value(first.items["x2"]), X2)
    assert second.items["img"].dtype == 14  # MS_BYTES
    assert payloads.ms_tensor_value(second.items["img"]) == PNG


def test_ms_grpc_reply_checks() -> None:
    assert payloads.check_ms_grpc_reply(_ms_reply([], 3), 3) == 3
    mixed = _ms_reply([(0, b""), (2, b"Cannot find input x1 in instance input"), (0, b"")], 3)
    assert payloads.check_ms_grpc_reply(mixed, 3) == 2
    with pytest.raises(CallError) as caught:
        payloads.check_ms_grpc_reply(_ms_reply([(5, b"servable is not available")], 0), 2)
    assert caught.value.kind == "SERVABLE_UNAVAILABLE"


def test_ms_rest_body_is_valid_mindspore_serving_json() -> None:
    body = payloads.ms_rest_body([{"x1": X1, "x2": X2}, {"x1": X2, "x2": X1}])
    instances = parse_request(body)  # msq's own MindSpore Serving REST parser
    assert len(instances) == 2
    np.testing.assert_array_equal(from_wire(instances[0]["x1"]), X1)
    np.testing.assert_array_equal(from_wire(instances[1]["x1"]), X2)
    image = json.loads(payloads.ms_rest_body([{"image": PNG}]))["instances"][0]["image"]
    assert image == {"b64": base64.b64encode(PNG).decode(), "type": "bytes"}


def test_ms_rest_reply_checks() -> None:
    ok = json.dumps({"instances": [{"y": 1}, {"y": 2}]}).encode()
    assert payloads.check_ms_rest_reply(200, ok, 2) == 2
    mixed = json.dumps({"instances": [{"y": 1}, {"error_msg": "bad"}]}).encode()
    assert payloads.check_ms_rest_reply(200, mixed, 2) == 1
    with pytest.raises(CallError) as caught:
        payloads.check_ms_rest_reply(200, b'{"error_msg": "servable is not available"}', 1)
    assert caught.value.kind == "error_msg"
    with pytest.raises(CallError) as caught:
        payloads.check_ms_rest_reply(503, b"busy", 1)
    assert caught.value.kind == "http 503"


def test_v2_tensors_stack_instances_when_the_model_batches() -> None:
    tensors = payloads.v2_tensors([{"x": X1}, {"x": X2}, {"x": X1}], batched=True)
    assert tensors["x"].shape == (3, 2, 2)
    assert payloads.v2_tensors([{"x": X1}], batched=False)["x"].shape == (2, 2)
    assert payloads.v2_tensors([{"b": PNG}, {"b": PNG}], batched=True)["b"].shape == (2, 1)
    with pytest.raises(ValueError, match="one instance per request"):
        payloads.v2_tensors([{"x": X1}, {"x": X2}], batched=False)


def test_v2_rest_body_binary_layout() -> None:
    tensors = payloads.v2_tensors([{"x": X1, "b": PNG}], batched=True)
    body, header_length = payloads.v2_rest_body(["y"], tensors)
    header = json.loads(body[:header_length])
    x_meta, b_meta = header["inputs"]
    assert x_meta == {
        "name": "x",
        "shape": [1, 2, 2],
        "datatype": "FP32",
        "parameters": {"binary_data_size": 16},
    }
    assert b_meta["datatype"] == "BYTES"
    assert b_meta["parameters"]["binary_data_size"] == 4 + len(PNG)
    assert header["outputs"] == [{"name": "y", "parameters": {"binary_data": True}}]
    tail = body[header_length:]
    assert tail == X1.tobytes() + len(PNG).to_bytes(4, "little") + PNG


def test_v2_rest_reply_checks() -> None:
    header = json.dumps({"outputs": [{"name": "y"}]}).encode()
    assert payloads.check_v2_rest_reply(200, header + b"\0" * 16, str(len(header)), 4) == 4
    with pytest.raises(CallError) as caught:
        payloads.check_v2_rest_reply(400, b'{"error": "bad"}', None, 1)
    assert caught.value.kind == "http 400"


def test_link_columns_and_reply_checks() -> None:
    (columns,) = payloads.link_columns([{"x1": X1, "x2": X2}, {"x1": X2, "x2": X1}])
    assert columns.count == 2
    np.testing.assert_array_equal(from_wire(columns.tensors["x2"]), np.stack([X2, X1]))
    failure = Failure(ErrorKind.INVALID_INPUT, "bad x1")
    good = {"y": columns.tensors["x1"]}
    assert payloads.check_link_reply(Reply(1, 1, [Columns(2, good)], [RowFailure(1, failure)])) == 2
    with pytest.raises(CallError) as caught:
        payloads.check_link_reply(Reply(1, 1, [], [RowFailure(0, failure), RowFailure(1, failure)]))
    assert caught.value.kind == "invalid_input"
    whole = Reply(1, 0, error=Failure(ErrorKind.QUEUE_FULL, "full"))
    with pytest.raises(CallError, match="queue_full: full"):
        payloads.check_link_reply(whole)
