"""Request bodies for each client protocol, encoded once per run, and reply checks.

The load generator sends the same pre-encoded body again and again, so client-side encoding
does not compete with the servers for the CPU; each reply is decoded and checked (errors are
raised as `CallError` with a kind), and the check returns the instances that succeeded.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from msq.benchmarks.load import CallError
from msq.benchmarks.scenarios import InstanceValues
from msq.gateways.v2.datatypes import DTYPE_TO_V2
from msq.proto import grpc_predict_v2_pb2 as v2_pb
from msq.proto import ms_service_pb2 as ms_pb
from msq.proto import ms_tensors
from msq.proto.codec import BYTES, STRING, from_wire, to_wire
from msq.proto.columns import count_rows, stack
from msq.proto.errors import MSErrorCode
from msq.proto.messages import Columns, Reply


def _ms_errors(messages: list[tuple[int, str]], expected: int, instances: int) -> int:
    """Succeeded instances of a MindSpore Serving reply (gRPC or REST), or raise."""
    failed = [(code, text) for code, text in messages if code != 0 or text]
    if not failed and instances == expected:
        return expected
    if instances == 0 or len(failed) == expected:
        code, text = failed[0] if failed else (1, "empty reply")
        name = MSErrorCode(code).name if code in list(MSErrorCode) else f"code {code}"
        raise CallError(name, text)
    return expected - len(failed)


# ------------------------------------------------------------- MindSpore Serving gRPC (Predict)


def fill_ms_tensor(tensor: Any, value: np.ndarray | bytes) -> None:
    """Write a value into a MindSpore Serving `Tensor` message."""
    ms_tensors.fill_ms_tensor(to_wire(value), tensor)


def ms_tensor_value(tensor: Any) -> np.ndarray | bytes:
    """The value of a MindSpore Serving `Tensor` message (STRING as its UTF-8 bytes)."""
    wire = ms_tensors.from_ms_tensor(tensor)
    return bytes(wire.data) if wire.dtype in (STRING, BYTES) else np.asarray(from_wire(wire))


def ms_grpc_request(servable: str, method: str, instances: list[InstanceValues]) -> bytes:
    """A serialized `PredictRequest`."""
    request = ms_pb.PredictRequest()
    request.servable_spec.name = servable
    request.servable_spec.method_name = method
    for values in instances:
        instance = request.instances.add()
        for name, value in values.items():
            fill_ms_tensor(instance.items[name], value)
    return bytes(request.SerializeToString())


def check_ms_grpc_reply(data: bytes, expected: int) -> int:
    """Succeeded instances of a serialized `PredictReply`."""
    reply = ms_pb.PredictReply.FromString(data)
    messages = [
        (error.error_code, error.error_msg.decode("utf-8", "replace")) for error in reply.error_msg
    ]
    return _ms_errors(messages, expected, len(reply.instances))


# ------------------------------------------------------------- MindSpore Serving REST (JSON)


def _b64_item(value: np.ndarray | bytes) -> dict[str, Any]:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii"), "type": "bytes"}
    array = np.ascontiguousarray(value)
    return {
        "b64": base64.b64encode(array.tobytes()).decode("ascii"),
        "type": array.dtype.name,
        "shape": list(array.shape),
    }


def ms_rest_body(instances: list[InstanceValues]) -> bytes:
    """A `POST /model/...` body with every tensor as a b64 object."""
    document = {
        "instances": [{name: _b64_item(value) for name, value in v.items()} for v in instances]
    }
    return json.dumps(document).encode("utf-8")


def check_ms_rest_reply(status: int, body: bytes, expected: int) -> int:
    """Succeeded instances of a MindSpore Serving REST reply."""
    if status != 200:
        raise CallError(f"http {status}", body[:200].decode("utf-8", "replace"))
    document = json.loads(body)
    if "error_msg" in document:
        raise CallError("error_msg", str(document["error_msg"]))
    outcomes = document.get("instances", [])
    messages = [(1, str(i["error_msg"])) if "error_msg" in i else (0, "") for i in outcomes]
    return _ms_errors(messages, expected, len(outcomes))


# --------------------------------------------------------------------- V2 (batched tensors)


def _v2_array(value: np.ndarray | bytes) -> np.ndarray:
    if isinstance(value, bytes):
        array = np.empty(1, dtype=object)
        array[0] = value
        return array
    return np.asarray(value)


def v2_tensors(instances: list[InstanceValues], batched: bool) -> dict[str, np.ndarray]:
    """The V2 input tensors: instances stacked on a batch dim when the model batches (then
    a request of n instances has dim 0 = n), else the single instance's tensors as they are.
    A `bytes` value is a BYTES tensor of shape [1]."""
    if not batched:
        if len(instances) != 1:
            raise ValueError("a V2 model that does not batch takes one instance per request")
        return {name: _v2_array(value) for name, value in instances[0].items()}
    return {name: np.stack([_v2_array(v[name]) for v in instances]) for name in instances[0]}


def _v2_raw(array: np.ndarray) -> bytes:
    if array.dtype.kind == "O":
        items = [bytes(item) for item in array.reshape(-1)]
        return b"".join(len(item).to_bytes(4, "little") + item for item in items)
    return np.ascontiguousarray(array).tobytes()


def _v2_datatype(array: np.ndarray) -> str:
    return "BYTES" if array.dtype.kind == "O" else DTYPE_TO_V2[array.dtype.name]


def v2_grpc_request(model: str, tensors: dict[str, np.ndarray]) -> bytes:
    """A serialized `ModelInferRequest` with raw input contents (as tritonclient sends)."""
    request = v2_pb.ModelInferRequest(model_name=model)
    for name, array in tensors.items():
        tensor = request.inputs.add(name=name, datatype=_v2_datatype(array))
        tensor.shape.extend(array.shape)
        request.raw_input_contents.append(_v2_raw(array))
    return bytes(request.SerializeToString())


def check_v2_grpc_reply(data: bytes, expected: int) -> int:
    """Instances answered by a serialized `ModelInferResponse` (errors are gRPC statuses)."""
    response = v2_pb.ModelInferResponse.FromString(data)
    if not response.outputs:
        raise CallError("no_outputs")
    return expected


def v2_rest_body(model_outputs: list[str], tensors: dict[str, np.ndarray]) -> tuple[bytes, int]:
    """A binary-extension infer body and its JSON header length (tritonclient's default)."""
    raws = [_v2_raw(array) for array in tensors.values()]
    header = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": _v2_datatype(array),
                "parameters": {"binary_data_size": len(raw)},
            }
            for (name, array), raw in zip(tensors.items(), raws, strict=True)
        ],
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in model_outputs],
    }
    encoded = json.dumps(header).encode("utf-8")
    return encoded + b"".join(raws), len(encoded)


def check_v2_rest_reply(status: int, body: bytes, header_length: str | None, expected: int) -> int:
    """Instances answered by a V2 REST infer response."""
    if status != 200:
        raise CallError(f"http {status}", body[:200].decode("utf-8", "replace"))
    document = json.loads(body if header_length is None else body[: int(header_length)])
    if not document.get("outputs"):
        raise CallError("no_outputs", str(document)[:200])
    return expected


# ------------------------------------------------------------------------ msq's broker link


def link_columns(instances: list[InstanceValues]) -> list[Columns]:
    """The instances as msq wire tensors, stacked into columns as the gateways send them."""
    return stack([{name: to_wire(value) for name, value in values.items()} for values in instances])


def check_link_reply(reply: Reply) -> int:
    """Succeeded instances of a broker `Reply`."""
    if reply.error is not None:
        raise CallError(reply.error.kind.value, reply.error.message)
    succeeded = count_rows(reply.columns)
    if reply.failures and not succeeded:
        failure = reply.failures[0].failure
        raise CallError(failure.kind.value, failure.message)
    return succeeded
