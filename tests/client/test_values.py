"""Unit tests of the client's value conventions (MindSpore Serving's) and reply parsing."""

from __future__ import annotations

import numpy as np
import pytest

from msq.client import Client, InstanceError
from msq.client.grpc_client import parse_reply
from msq.client.values import fill_instance, read_instance, wire_value
from msq.proto import ms_service_pb2 as pb
from msq.proto.codec import WireTensor


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, WireTensor("bool", (1,), b"\x01")),
        (7, WireTensor("int64", (1,), np.int64(7).tobytes())),
        (-0.5, WireTensor("float64", (1,), np.float64(-0.5).tobytes())),
        ("h\u00e9", WireTensor("str", (1,), "h\u00e9".encode())),
        ("", WireTensor("str", (1,), b"")),
        (b"\x00b", WireTensor("bytes", (1,), b"\x00b")),
        (bytearray(b"ab"), WireTensor("bytes", (1,), b"ab")),
        (np.float16(1.5), WireTensor("float16", (), np.float16(1.5).tobytes())),
        (np.bool_(False), WireTensor("bool", (), b"\x00")),
        (np.float64(0.25), WireTensor("float64", (), np.float64(0.25).tobytes())),
        (np.str_("s"), WireTensor("str", (1,), b"s")),
    ],
)
def test_values_follow_mindspore_serving_client(value: object, expected: WireTensor) -> None:
    assert wire_value(value) == expected


def test_arrays_keep_dtype_and_shape_and_fortran_order_is_fixed() -> None:
    array = np.asfortranarray(np.arange(6, dtype=np.uint16).reshape(2, 3))
    wire = wire_value(array)
    assert (wire.dtype, wire.shape) == ("uint16", (2, 3))
    assert bytes(wire.data) == np.arange(6, dtype=np.uint16).tobytes()


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ([1, 2], "unsupported value type list"),
        (None, "unsupported value type NoneType"),
        (np.array(["a"]), "unsupported data type"),
        (2**70, "unsupported data type object"),
    ],
)
def test_unsupported_values_raise(value: object, needle: str) -> None:
    with pytest.raises(TypeError, match=needle):
        wire_value(value)


def test_instances_are_written_and_read_back() -> None:
    message = pb.Instance()
    fill_instance(message, {"x": np.eye(2, dtype=np.float32), "s": "t", "b": b"", "n": 3})
    assert message.items["x"].dtype == pb.MS_FLOAT32
    assert list(message.items["s"].shape.dims) == [1]
    values = read_instance(message)
    np.testing.assert_array_equal(values["x"], np.eye(2, dtype=np.float32))
    assert (values["s"], values["b"]) == ("t", b"")
    np.testing.assert_array_equal(values["n"], np.array([3], np.int64))


def test_bad_instances_raise_instance_error_which_is_a_runtime_error() -> None:
    client = Client("127.0.0.1:1", "s", "m")
    with pytest.raises(InstanceError, match="instance 1 must be a dict, not int"):
        client.infer([{"x": 1}, 2])  # type: ignore[list-item]
    with pytest.raises(RuntimeError, match="instance 0: input y: unsupported value type list"):
        client.infer_async({"y": [1]})
    with pytest.raises(TypeError, match="input names must be str"):
        client.infer({1: 1})  # type: ignore[dict-item]
    client.close()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("", "s", "m"), "address"),
        (("a:1", "", "m"), "servable_name"),
        (("a:1", "s", None), "method_name"),
        (("a:1", "s", "m", -1), "version_number must be >= 0"),
        (("a:1", "s", "m", True), "version_number must be an int"),
    ],
)
def test_bad_client_arguments(args: tuple[object, ...], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Client(*args)  # type: ignore[arg-type]


def reply(*errors: tuple[int, bytes], instances: int = 0) -> pb.PredictReply:
    message = pb.PredictReply()
    for code, text in errors:
        message.error_msg.add(error_code=code, error_msg=text)
    for index in range(instances):
        item = message.instances.add().items["y"]
        item.dtype = pb.MS_INT32
        item.data = np.int32(index).tobytes()
    return message


def test_parse_replies() -> None:
    assert parse_reply(reply(instances=2)) == [{"y": np.int32(0)}, {"y": np.int32(1)}]
    assert parse_reply(reply((5, b"servable is not available"))) == {
        "error": "servable is not available"
    }
    mixed = parse_reply(reply((0, b""), (2, b"bad \xff"), instances=2))
    assert mixed == [{"y": np.int32(0)}, {"error": "bad \ufffd"}]
    assert parse_reply(reply((1, b"a"), (1, b"b"), instances=3)) == {
        "error": "malformed reply: 2 errors for 3 instances"
    }
    broken = reply(instances=1)
    broken.instances[0].items["y"].data = b"\x00"
    (result,) = parse_reply(broken)
    assert isinstance(result, dict)
    assert "malformed reply: data size 1" in str(result["error"])
