"""Open Inference Protocol (V2) REST bodies: JSON tensors and the binary tensor extension.

Pure functions, no I/O. An infer body is a JSON header, optionally followed by raw tensors
(`Inference-Header-Content-Length` gives the header's size; tritonclient sends no
Content-Type). An input with `parameters.binary_data_size` is read from that tail, in the
order of the inputs; others carry `data` (nested or flat, row-major). Outputs are binary
when the output asks for `binary_data`, else when the request's `binary_data_output` is set
(tritonclient sets it when it names no outputs); binary BYTES elements are each a 4-byte
little-endian length followed by the bytes. Non-finite numbers follow
`msq.gateways.rest.json_numbers`: refused in the JSON of a request,
`"NaN"`/`"Infinity"`/`"-Infinity"` in JSON output data (exact in the binary extension either
way).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from msq.gateways.core.errors import GatewayError
from msq.gateways.rest import json_numbers
from msq.gateways.v2.datatypes import V2_TO_DTYPE
from msq.gateways.v2.tensors import V2Tensor, pack_bytes
from msq.proto.codec import BYTES
from msq.proto.errors import ErrorKind

#: Header naming the size of the JSON part of a body that carries binary tensors.
HEADER_LENGTH = "Inference-Header-Content-Length"
#: JSON leaf types accepted for each kind of V2 datatype.
_FLOAT_LEAVES = frozenset({int, float})
_INT_LEAVES = frozenset({int})


def _invalid(message: str) -> GatewayError:
    return GatewayError(ErrorKind.INVALID_INPUT, message)


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded V2 infer request."""

    inputs: list[V2Tensor]
    request_id: str | None = None
    #: Requested outputs in order (empty: all), and whether each asks for binary (None: the
    #: output does not say).
    outputs: dict[str, bool | None] = field(default_factory=dict)
    #: Binary for outputs that do not say (`parameters.binary_data_output`).
    binary_default: bool = False
    #: The request's `parameters.timeout` as given (microseconds; None: absent), checked by
    #: `msq.gateways.core.deadline`.
    timeout: object = None

    def binary(self, output: str) -> bool:
        """Whether `output` is answered in the binary tail."""
        flag = self.outputs.get(output)
        return self.binary_default if flag is None else flag


def parse_infer_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """Decode an infer body; raise `GatewayError` (INVALID_INPUT) naming the problem."""
    json_part, tail = _split_body(body, header_length)
    try:
        document = json_numbers.loads(json_part)
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"malformed JSON in the inference request: {exc}") from None
    if not isinstance(document, dict):
        raise _invalid("the inference request must be a JSON object")
    parameters = _object(document.get("parameters", {}), "parameters")
    inputs = _array(document.get("inputs"), "inputs")
    tensors, offset = [], 0
    for index, item in enumerate(inputs):
        tensor, size = _parse_input(_object(item, f"inputs[{index}]"), tail, offset)
        tensors.append(tensor)
        offset += size
    if offset != len(tail):
        raise _invalid(
            f"the binary data sizes of the inputs add up to {offset} bytes, but the body "
            f"carries {len(tail)} bytes after the JSON header"
        )
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _invalid("'id' must be a string")
    return InferRequest(
        inputs=tensors,
        request_id=request_id,
        outputs=_parse_outputs(document.get("outputs", [])),
        binary_default=_flag(parameters, "binary_data_output", "parameters"),
        timeout=parameters.get("timeout"),
    )


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    try:
        length = int(header_length)
    except ValueError:
        raise _invalid(f"{HEADER_LENGTH} {header_length!r} is not an integer") from None
    if not 0 <= length <= len(body):
        raise _invalid(f"{HEADER_LENGTH} {length} does not fit the body of {len(body)} bytes")
    view = memoryview(body)
    return body[:length], view[length:]


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"'{what}' must be a JSON object")
    return value


def _array(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(f"'{what}' must be a JSON array")
    return value


def _flag(parameters: dict[str, Any], name: str, what: str) -> bool:
    value = parameters.get(name, False)
    if not isinstance(value, bool):
        raise _invalid(f"'{what}.{name}' must be true or false")
    return value


def _parse_outputs(outputs: object) -> dict[str, bool | None]:
    wanted: dict[str, bool | None] = {}
    for index, item in enumerate(_array(outputs, "outputs")):
        output = _object(item, f"outputs[{index}]")
        name = output.get("name")
        if not isinstance(name, str):
            raise _invalid(f"'outputs[{index}].name' must be a string")
        parameters = _object(output.get("parameters", {}), f"outputs[{index}].parameters")
        if "classification" in parameters:
            raise _invalid("the classification extension is not supported")
        wanted[name] = (
            _flag(parameters, "binary_data", f"outputs[{index}].parameters")
            if "binary_data" in parameters
            else None
        )
    return wanted


def _parse_input(item: dict[str, Any], tail: memoryview, offset: int) -> tuple[V2Tensor, int]:
    """One input and the number of tail bytes it takes."""
    name = item.get("name")
    if not isinstance(name, str):
        raise _invalid("every input needs a string 'name'")
    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise _invalid(f"input {name!r} needs a string 'datatype'")
    shape = item.get("shape")
    if not isinstance(shape, list) or any(type(dim) is not int or dim < 0 for dim in shape):
        raise _invalid(f"input {name!r} needs a 'shape' of non-negative integers")
    parameters = _object(item.get("parameters", {}), f"input {name!r} parameters")
    if any(key.startswith("shared_memory") for key in parameters):
        raise _invalid(f"input {name!r}: the shared memory extension is not supported")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in item:
            raise _invalid(f"input {name!r} has neither 'data' nor 'binary_data_size'")
        return V2Tensor(name, datatype, tuple(shape), _json_data(item, datatype, shape)), 0
    if "data" in item:
        raise _invalid(f"input {name!r} has both 'data' and 'binary_data_size'")
    if type(size) is not int or size < 0:
        raise _invalid(f"input {name!r}: 'binary_data_size' must be a non-negative integer")
    if offset + size > len(tail):
        raise _invalid(
            f"input {name!r}: binary_data_size {size} runs past the end of the body "
            f"({len(tail) - offset} bytes left)"
        )
    return V2Tensor(name, datatype, tuple(shape), tail[offset : offset + size]), size


def _json_data(item: dict[str, Any], datatype: str, shape: list[int]) -> bytes | list[bytes]:
    """An input's JSON `data` as raw little-endian bytes, or BYTES elements."""
    name = item["name"]
    dtype = V2_TO_DTYPE.get(datatype)
    if dtype is None:
        raise _invalid(f"input {name!r}: datatype {datatype!r} is not supported")
    try:
        leaves = np.array(item["data"], dtype=object).ravel().tolist()
    except ValueError:
        leaves = [[]]
    kinds = set(map(type, leaves))
    if list in kinds:
        raise _invalid(f"input {name!r}: 'data' is not a rectangular array")
    if len(leaves) != math.prod(shape):
        raise _invalid(f"input {name!r}: {len(leaves)} data elements do not match shape {shape}")
    if dtype == BYTES:
        if not kinds <= {str}:
            raise _invalid(f"input {name!r}: BYTES data must be strings")
        return [leaf.encode("utf-8") for leaf in leaves]
    allowed = {"b": {bool}, "f": _FLOAT_LEAVES}.get(np.dtype(dtype).kind, _INT_LEAVES)
    if not kinds <= allowed:
        shown = ", ".join(sorted(kind.__name__ for kind in kinds - allowed))
        raise _invalid(
            f"input {name!r}: {datatype} data must be a flat or nested array of "
            f"{' or '.join(sorted(k.__name__ for k in allowed))}, got {shown}"
        )
    try:
        with np.errstate(over="ignore"):
            return np.array(leaves, dtype=dtype).tobytes()
    except OverflowError:
        raise _invalid(f"input {name!r}: a value is out of the range of {datatype}") from None


def encode_infer_response(
    model_name: str, model_version: int, request: InferRequest, outputs: list[V2Tensor]
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    described: list[dict[str, Any]] = []
    tail: list[bytes | memoryview] = []
    for tensor in outputs:
        output: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if request.binary(tensor.name):
            raw = (
                pack_bytes(tensor.data)
                if isinstance(tensor.data, list)
                else memoryview(tensor.data).cast("B")
            )
            output["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            output["data"] = _output_json(tensor)
        described.append(output)
    document: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request.request_id is not None:
        document["id"] = request.request_id
    document["outputs"] = described
    header = json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if not tail:
        return header, None
    return b"".join([header, *tail]), len(header)


def _output_json(tensor: V2Tensor) -> list[Any]:
    if isinstance(tensor.data, list):
        try:
            return [element.decode("utf-8") for element in tensor.data]
        except UnicodeDecodeError:
            raise _invalid(
                f"output {tensor.name!r} is not UTF-8 text: request it with binary_data"
            ) from None
    dtype = V2_TO_DTYPE[tensor.datatype]
    values: list[Any] = json_numbers.json_values(np.frombuffer(memoryview(tensor.data), dtype))
    return values
