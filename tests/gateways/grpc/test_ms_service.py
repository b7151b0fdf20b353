"""Unit tests of MSService.Predict's request decoding and reply building (no sockets)."""

from __future__ import annotations

import numpy as np
import pytest

from msq.gateways.grpc.ms_service import (
    NO_INSTANCES,
    decode_instance,
    fill_reply,
    timeout_of_all,
)
from msq.gateways.grpc.wire import RawTensor, parse_predict_request
from msq.proto import ms_service_pb2 as pb
from msq.proto.codec import WireTensor, to_wire
from msq.proto.columns import Outcomes
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import InstanceOutcome

BAD = Failure(ErrorKind.INVALID_INPUT, "input x: bad")
MISSING = Failure(ErrorKind.INVALID_INPUT, "Cannot find input x in instance input")
GONE = Failure(ErrorKind.NOT_FOUND, "servable is not available")


def tensor(
    dtype: int, dims: list[int], data: bytes = b"", bytes_val: tuple[bytes, ...] = ()
) -> pb.Tensor:
    message = pb.Tensor(dtype=dtype, bytes_val=list(bytes_val))  # type: ignore[arg-type]
    message.shape.dims.extend(dims)
    if data:
        message.data = data
    return message


def instance(**items: pb.Tensor) -> dict[str, RawTensor]:
    """The instance's tensors as the gateway decodes them off the wire."""
    request = pb.PredictRequest()
    message = request.instances.add()
    for name, item in items.items():
        message.items[name].CopyFrom(item)
    return parse_predict_request(request.SerializeToString()).instances[0]


def test_decode_numeric_string_and_bytes_tensors() -> None:
    data = np.arange(6, dtype=np.float16).tobytes()
    decoded = decode_instance(
        instance(
            x=tensor(pb.MS_FLOAT16, [2, 3], data),
            s=tensor(pb.MS_STRING, [1], bytes_val=(b"hi",)),
            b=tensor(pb.MS_BYTES, [], bytes_val=(b"",)),
            e=tensor(pb.MS_UINT64, [0]),
        )
    )
    assert decoded == {
        "x": WireTensor("float16", (2, 3), data),
        "s": WireTensor("str", (1,), b"hi"),
        "b": WireTensor("bytes", (), b""),
        "e": WireTensor("uint64", (0,), b""),
    }


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        (tensor(pb.MS_FLOAT32, [2, 2], bytes(12)), "data size 12 does not match shape [2, 2]"),
        (tensor(pb.MS_UNKNOWN, [1], bytes(1)), "unknown data type 0"),
        (tensor(pb.MS_STRING, [1]), "exactly one element in bytes_val, not 0"),
        (tensor(pb.MS_BYTES, [2], bytes_val=(b"a", b"b")), "exactly one element in bytes_val"),
        (tensor(pb.MS_BYTES, [2], bytes_val=(b"a",)), "shape [] or [1]"),
        (tensor(pb.MS_INT32, [-1], b""), "invalid shape [-1]"),
    ],
)
def test_malformed_tensors_fail_their_instance(item: pb.Tensor, needle: str) -> None:
    decoded = decode_instance(instance(good=tensor(pb.MS_INT8, [1], b"\x01"), x=item))
    assert isinstance(decoded, Failure)
    assert decoded.kind is ErrorKind.INVALID_INPUT
    assert decoded.message.startswith("input x: ")
    assert needle in decoded.message


def test_shared_memory_tensors_are_refused() -> None:
    item = pb.Tensor(dtype=pb.MS_INT8)
    item.shm_data.memory_key = "k"
    decoded = decode_instance(instance(x=item))
    assert decoded == Failure(
        ErrorKind.INVALID_INPUT, "input x: shared-memory tensors are not supported"
    )


def reply_of(outcomes: list[InstanceOutcome]) -> pb.PredictReply:
    reply = pb.PredictReply()
    fill_reply(reply, Outcomes.of(outcomes))
    return reply


def errors(reply: pb.PredictReply) -> list[tuple[int, bytes]]:
    return [(error.error_code, error.error_msg) for error in reply.error_msg]


def test_reply_all_good() -> None:
    reply = reply_of([{"y": to_wire(np.float32(2.5))}, {"y": to_wire("z")}])
    assert errors(reply) == []
    assert len(reply.instances) == 2
    y0, y1 = reply.instances[0].items["y"], reply.instances[1].items["y"]
    assert (y0.dtype, list(y0.shape.dims), y0.data) == (
        pb.MS_FLOAT32,
        [],
        np.float32(2.5).tobytes(),
    )
    assert (y1.dtype, list(y1.bytes_val)) == (pb.MS_STRING, [b"z"])


def test_reply_whole_request_failure() -> None:
    reply = reply_of([GONE, GONE])
    assert errors(reply) == [(5, b"servable is not available")]
    assert len(reply.instances) == 0
    assert errors(reply_of([])) == [(2, NO_INSTANCES.encode())]


def test_reply_mixed_outcomes_have_one_error_per_instance() -> None:
    reply = reply_of([{"y": to_wire(np.int64(7))}, MISSING, Failure(ErrorKind.MODEL_ERROR, "boom")])
    assert errors(reply) == [
        (0, b""),
        (2, b"Cannot find input x in instance input"),
        (1, b"boom"),
    ]
    assert [len(i.items) for i in reply.instances] == [1, 0, 0]


def test_different_failures_of_every_instance_stay_per_instance() -> None:
    reply = reply_of([MISSING, BAD])
    assert errors(reply) == [(2, MISSING.message.encode()), (2, BAD.message.encode())]
    assert len(reply.instances) == 2


def test_timeout_of_all() -> None:
    late = Failure(ErrorKind.TIMEOUT, "late")
    assert timeout_of_all(Outcomes.of([late, Failure(ErrorKind.TIMEOUT, "later")])) == late
    assert timeout_of_all(Outcomes.of([late, BAD])) is None
    assert timeout_of_all(Outcomes.of([late, {}])) is None
    assert timeout_of_all(Outcomes.of([])) is None
