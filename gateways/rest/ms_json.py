"""MindSpore Serving's REST JSON codec: request body -> instances, their outcomes -> JSON.

Pure functions, no I/O. The rules and the error wording follow MindSpore Serving 1.x/2.0
(`master/restful/http_process.cc`) so that existing callers and their log greps keep working:

- a JSON scalar is a 0-d tensor: int -> int32, float -> float32, bool -> bool, str -> STRING;
- nested JSON arrays give the shape by their nesting; every leaf has the same kind (int, float,
  bool, str or a b64 object); ragged, mixed and empty arrays are errors; a STRING/BYTES array
  holds exactly one element;
- `{"b64": "...", "type": "<t>", "shape": [...]}` carries raw little-endian bytes of any type
  (`type` defaults to bytes, `shape` to a scalar);
- replies: shape [] -> JSON scalar, else nested lists; BYTES -> `{"b64": ...}`; STRING -> string;
  keys sorted, no spaces.

Improvements over the original, each with a clear error instead of a silent wrap: JSON integers
outside int32, invalid UTF-8 in a STRING and arrays deeper than `MAX_DIMS`. A shape may contain
zeros anywhere. Non-finite numbers follow `msq.gateways.rest.json_numbers` (refused in requests;
`"NaN"`/`"Infinity"`/`"-Infinity"` in replies, where MindSpore Serving wrote `null`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from msq.gateways.rest import json_numbers
from msq.proto.codec import BYTES, STRING, CodecError, WireTensor, from_wire, to_wire
from msq.proto.columns import Outcomes
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Instance, RowFailure

#: The `type` names a b64 object may carry, and the msq dtype each means.
B64_TYPES: dict[str, str] = {
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "fp16": "float16",
    "float16": "float16",
    "fp32": "float32",
    "float32": "float32",
    "fp64": "float64",
    "float64": "float64",
    "bool": "bool",
    "str": STRING,
    "bytes": BYTES,
}
#: Deepest nested JSON array accepted as a tensor.
MAX_DIMS = 32
#: The dtype of a JSON leaf of each Python type (bool before int: bool is an int subclass).
_LEAF_DTYPES: dict[type, str] = {bool: "bool", int: "int32", float: "float32", str: STRING}
_INT32 = np.iinfo(np.int32)
_PARSE_PREFIX = "Parser request failed, "


class MSRestError(ValueError):
    """A request MindSpore Serving's REST API refuses; `str(error)` is its `error_msg`."""


def parse_request(body: bytes) -> list[Instance]:
    """Decode a `POST /model/...` body into instances, or raise `MSRestError`."""
    if not body:
        raise MSRestError("http message invalid")
    try:
        document = json_numbers.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MSRestError(f"Illegal JSON format.{exc}") from None
    try:
        return parse_instances(document)
    except MSRestError as exc:
        raise MSRestError(_PARSE_PREFIX + str(exc)) from None


def parse_instances(document: object) -> list[Instance]:
    """The instances of a decoded request document (errors without the parse prefix)."""
    if not isinstance(document, dict) or "instances" not in document:
        raise MSRestError("key 'instances' expects to exist once, but actually 0 times")
    instances = document["instances"]
    if isinstance(instances, dict):
        if not instances:
            raise MSRestError("json object, value is empty")
        return [parse_instance(instances)]
    if not isinstance(instances, list) or (instances and not isinstance(instances[0], dict)):
        raise MSRestError("instances no key mode is not supported")
    if not instances:
        raise MSRestError("instances value is array type, but no value")
    parsed = []
    for instance in instances:
        if not isinstance(instance, dict):
            raise MSRestError("json array, instance is not object type")
        if not instance:
            raise MSRestError("json array, instance is object type, but no value")
        parsed.append(parse_instance(instance))
    return parsed


def parse_instance(items: dict[str, Any]) -> Instance:
    """One instance: every item converted to a `WireTensor`."""
    instance: Instance = {}
    for key, value in items.items():
        if not key:
            raise MSRestError("string key is empty")
        instance[key] = parse_value(value)
    return instance


def parse_value(value: object) -> WireTensor:
    """One item of an instance: a JSON scalar, a nested array or a b64 object."""
    if isinstance(value, dict):
        return _parse_b64_object(value)
    if isinstance(value, list):
        return _parse_array(value)
    return _parse_scalar(value)


def _parse_scalar(value: object) -> WireTensor:
    if value is None:
        raise MSRestError("json value is null, it is not supported")
    if isinstance(value, str):
        return WireTensor(STRING, (), value.encode("utf-8"))
    dtype = _LEAF_DTYPES.get(type(value))
    if dtype is None:
        raise MSRestError("json value type is unregistered")
    if type(value) is int and not _INT32.min <= value <= _INT32.max:
        raise _int32_error(value)
    with np.errstate(over="ignore"):
        return to_wire(np.asarray(value, dtype=dtype))


def _int32_error(value: object) -> MSRestError:
    return MSRestError(
        f"json integer {value} is out of the int32 range, "
        "send it as {'b64': ..., 'type': 'int64', 'shape': [...]}"
    )


def _check_b64_object(obj: dict[str, Any]) -> None:
    """The checks of MindSpore Serving's `CheckObj`, in its order."""
    if not obj:
        raise MSRestError("json object, value is empty")
    if len(obj) > 3:
        raise MSRestError(
            "json object, items size is more than 3, "
            "only support specified ['b64', 'type', 'shape']"
        )
    for key, item in obj.items():
        if key == "type":
            if not isinstance(item, str):
                raise MSRestError("json object, key is 'type', value should be string type")
            if item not in B64_TYPES:
                raise MSRestError(f"json object, specified type:'{item}' is illegal")
        elif key == "shape":
            if not isinstance(item, list):
                raise MSRestError("json object, key is 'shape', value should be array type")
            for dim in item:
                if type(dim) is not int:
                    raise MSRestError(
                        "json object, key is 'shape', array value should be unsigned integer"
                    )
                if dim < 0:
                    raise MSRestError(
                        "json object, key is 'shape', number value should not be negative "
                        f"number, shape value: {json.dumps(item, separators=(',', ':'))}"
                    )
            if len(item) > MAX_DIMS:
                raise MSRestError(f"json object, key is 'shape', more than {MAX_DIMS} dims")
        elif key != "b64":
            raise MSRestError(f"json object, key is not ['b64', 'type', 'shape'], fail key:{key}")
    if "b64" not in obj:
        raise MSRestError("json object, 'b64' should be specified only one time")


def _parse_b64_object(obj: dict[str, Any]) -> WireTensor:
    _check_b64_object(obj)
    dtype = B64_TYPES[obj.get("type", "bytes")]
    shape = tuple(obj.get("shape", ()))
    if dtype in (STRING, BYTES) and math.prod(shape) != 1:
        raise MSRestError(
            "json object, only support scalar when data type is string or bytes, "
            "please check 'type' or 'shape'"
        )
    return _decode_b64(obj["b64"], dtype, shape)


def _decode_b64(text: object, dtype: str, shape: tuple[int, ...]) -> WireTensor:
    if not isinstance(text, str):
        raise MSRestError("get scalar data failed, type is string, but json is not string type")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        shown = text if len(text) <= 64 else text[:64] + "..."
        raise MSRestError(f"'{shown}' is illegal b64 encode string") from None
    if dtype == STRING:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise MSRestError("b64 decoded data of type str is not valid UTF-8") from None
    elif dtype != BYTES:
        itemsize = np.dtype(dtype).itemsize
        count = math.prod(shape)
        if len(data) != itemsize * count:
            raise MSRestError(
                f"size is not matched, decode base64 size:{len(data)}; Given info: "
                f"type:{dtype}; type size:{itemsize}; element nums:{count}"
            )
    return WireTensor(dtype, shape, data)


def _array_shape(value: list[Any]) -> tuple[tuple[int, ...], object]:
    """The shape along the first elements of a nested array, and its first leaf."""
    shape: list[int] = []
    node: object = value
    while isinstance(node, list) and node:
        shape.append(len(node))
        if len(shape) > MAX_DIMS:
            raise MSRestError(f"json array, more than {MAX_DIMS} dims")
        node = node[0]
    return tuple(shape), node


def _leaf_dtype(leaf: object) -> str | None:
    if isinstance(leaf, dict):
        name = leaf.get("type", "bytes")
        return B64_TYPES.get(name) if isinstance(name, str) else None
    return _LEAF_DTYPES.get(type(leaf))


def _parse_array(value: list[Any]) -> WireTensor:
    shape, first_leaf = _array_shape(value)
    if not shape:
        raise MSRestError("json array, shape is empty")
    dtype = _leaf_dtype(first_leaf)
    if dtype is None:
        raise MSRestError("json array, data type is unknown")
    if dtype in (STRING, BYTES):
        # A single element: every level holds one item, so the array is rectangular.
        if math.prod(shape) != 1:
            raise MSRestError("json array, string or bytes type only support one item")
        if isinstance(first_leaf, str):
            return WireTensor(STRING, shape, first_leaf.encode("utf-8"))
        assert isinstance(first_leaf, dict)
        _check_b64_object(first_leaf)
        return _decode_b64(first_leaf["b64"], dtype, shape)
    if isinstance(first_leaf, dict):
        raise MSRestError(
            "json array, item is object type, object only support string or bytes type"
        )
    leaves = _rectangular_leaves(value, shape)
    if leaves is None:
        raise _array_error(value, shape, dtype)
    if dtype == "int32":
        return to_wire(_int32_array(leaves))
    with np.errstate(over="ignore"):
        return to_wire(leaves.astype(dtype))


def _rectangular_leaves(value: list[Any], shape: tuple[int, ...]) -> np.ndarray | None:
    """The leaves as an object array of `shape` if the array is rectangular and every leaf has
    the kind of the first one; else None (the caller then finds the precise error)."""
    try:
        leaves = np.array(value, dtype=object)
    except ValueError:
        return None
    if leaves.shape != shape:
        return None
    kinds = set(map(type, leaves.flat))
    return leaves if len(kinds) == 1 else None


def _int32_array(leaves: np.ndarray) -> np.ndarray:
    try:
        wide = leaves.astype(np.int64)
    except OverflowError:
        raise _int32_error(max(leaves.flat, key=abs)) from None
    for bound in (wide.min(), wide.max()):
        if not _INT32.min <= bound <= _INT32.max:
            raise _int32_error(bound)
    return wide.astype(np.int32)


def _array_error(value: list[Any], shape: tuple[int, ...], dtype: str) -> MSRestError:
    """Walk a numeric array as MindSpore Serving did and return its first error."""
    for depth, node in _walk(value, shape):
        if not isinstance(node, list):
            return MSRestError("invalid json array: json type is not array")
        if len(node) != shape[depth]:
            return MSRestError(
                f"invalid json array: json size is {len(node)}, the dim {depth} "
                f"expected to be {shape[depth]}"
            )
        if depth + 1 < len(shape):
            continue
        for leaf in node:
            if type(leaf) not in _LEAF_DTYPES:
                return MSRestError("json array, data should be number, bool, string or bytes")
            if _LEAF_DTYPES[type(leaf)] != dtype:
                return MSRestError("json array, elements type is not equal")
    return MSRestError(f"json array of shape {list(shape)} cannot be converted to {dtype}")


def _walk(value: list[Any], shape: tuple[int, ...]) -> Iterator[tuple[int, object]]:
    """Depth-first (depth, node) pairs of the array's levels, in document order."""
    stack: list[tuple[int, object]] = [(0, value)]
    while stack:
        depth, node = stack.pop()
        yield depth, node
        if depth + 1 < len(shape) and isinstance(node, list):
            stack.extend((depth + 1, child) for child in reversed(node))


def reply_document(outcomes: Outcomes) -> tuple[dict[str, Any], Failure | None]:
    """The JSON document answering a request whose instances had these outcomes, and the
    failure of the whole request if there is one (each output column is converted once).

    As in MindSpore Serving, a request whose instances all failed with the same error (a single
    instance included) is answered as a whole-request failure.
    """
    failure = _common_failure(outcomes.failures, outcomes.count)
    if failure is not None:
        return {"error_msg": failure.message}, failure
    failed = {failure.row: failure.failure for failure in outcomes.failures}
    try:
        outputs = _output_rows(outcomes.columns)
        instances = [
            {"error_msg": failed[row].message} if row in failed else next(outputs)
            for row in range(outcomes.count)
        ]
    except CodecError as exc:
        failure = Failure(ErrorKind.INTERNAL, f"Failed to construct the response: {exc}")
        return {"error_msg": failure.message}, failure
    return {"instances": instances}, None


def _output_rows(columns: list[Columns]) -> Iterator[dict[str, object]]:
    """Each row's outputs as JSON values, in order (each column converted as a whole)."""
    for part in columns:
        values = {name: cast(list[object], tensor_json(t)) for name, t in part.tensors.items()}
        for row in range(part.count):
            yield {name: column[row] for name, column in values.items()}


def _common_failure(failures: list[RowFailure], count: int) -> Failure | None:
    first = failures[0].failure if failures else None
    if first is None or len(failures) != count:
        return None
    return first if all(f.failure.message == first.message for f in failures) else None


def tensor_json(tensor: WireTensor) -> object:
    """One output tensor as MindSpore Serving's JSON value."""
    value = from_wire(tensor)
    if isinstance(value, (bytes, str)):
        element: object = (
            {"b64": base64.b64encode(value).decode("ascii")} if isinstance(value, bytes) else value
        )
        for _ in tensor.shape:
            element = [element]
        return element
    return json_numbers.json_values(np.asarray(value))


def dump_json(document: object) -> bytes:
    """Serialize a reply document byte-for-byte as MindSpore Serving did."""
    return json.dumps(
        document, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False
    ).encode("utf-8")
