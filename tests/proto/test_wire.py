"""Message framing: every command round-trips; malformed frames raise WireError, nothing else."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msq.proto import wire
from msq.proto.codec import to_wire
from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    PROTOCOL_VERSION,
    BatchPolicy,
    Cancel,
    Disconnect,
    Heartbeat,
    Job,
    JobTrace,
    Message,
    MethodSignature,
    Ready,
    Reply,
    Request,
    Result,
    RowFailure,
    ServableInfo,
    Status,
    StatusQuery,
    TensorSpec,
)
from msq.proto.wire import WireError, decode, encode

BIG = np.arange(40000, dtype=np.float32)  # 160 KiB: travels as its own frame
SIGNATURE = MethodSignature(
    "predict",
    (TensorSpec("x", "float32", (-1, 3)), TensorSpec("s", "str", ())),
    (TensorSpec("y"),),
    BatchPolicy((1, 2, 4), 4, 1.5, 99),
)
MESSAGES: list[Message] = [
    Ready("model", 3, (SIGNATURE,), capacity=2, device="gpu:1", pid=42),
    Heartbeat(),
    Disconnect("bye"),
    Request(
        7,
        "model",
        "predict",
        stack([{"x": to_wire(BIG), "s": to_wire("hi")}]),
        2,
        1500.0,
        "r-1",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ),
    Reply(
        7, 2, stack([{"y": to_wire(BIG)}]), [RowFailure(1, Failure(ErrorKind.MODEL_ERROR, "boom"))]
    ),
    Reply(8, 0, error=Failure(ErrorKind.NOT_FOUND, "servable is not available")),
    Cancel(7),
    Job(
        11,
        "predict",
        stack([{"x": to_wire(np.ones(3, np.float32))}] * 2),
        60_000.0,
        ["r-1", "r-2"],
        [JobTrace("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 1.5)],
    ),
    Result(
        11,
        stack([{"y": to_wire(b"\x00raw")}]),
        [RowFailure(1, Failure(ErrorKind.TIMEOUT, "late"))],
        3.5,
    ),
    StatusQuery(5),
    Status(5, [ServableInfo("model", 3, (SIGNATURE,), 2)], {"uptime_s": 1.0, "routes": []}),
]


def _normalise(message: Message) -> object:
    """Compare messages by value: tensors by dtype, shape and bytes."""

    def walk(value: object) -> object:
        if isinstance(value, tuple) and hasattr(value, "_fields") and hasattr(value, "data"):
            return (value.dtype, value.shape, bytes(value.data))  # type: ignore[attr-defined]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if hasattr(value, "__dataclass_fields__"):
            return {f: walk(getattr(value, f)) for f in value.__dataclass_fields__}  # type: ignore[union-attr]
        return value

    return walk(message)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_command_roundtrips(message: Message) -> None:
    frames = encode(message)
    back = decode([memoryview(frame) for frame in frames])
    assert type(back) is type(message)
    assert _normalise(back) == _normalise(message)


def test_large_tensors_travel_as_frames_small_ones_inline() -> None:
    frames = encode(MESSAGES[3])
    assert len(frames) == 2
    assert frames[1] is BIG


def header(command: str, *fields: object, version: int = PROTOCOL_VERSION) -> bytes:
    return msgpack.packb([version, command, *fields], use_bin_type=True)


@pytest.mark.parametrize(
    ("frames", "problem", "request_id"),
    [
        ([], "empty message", None),
        ([b"\xc1\xff"], "not valid msgpack", None),
        ([b"\x91" * 100_000], "not valid msgpack", None),  # nested too deep
        ([msgpack.packb({"v": 2, "c": "Heartbeat"})], "not an array", None),
        ([header("Heartbeat", version=1)], "protocol version 1 is not supported", None),
        ([header("nope", 3)], "unknown command 'nope'", None),
        ([header("Request", 4, "s", "m")], "a Request must be an array of 8 fields", 4),
        (
            [header("Request", 5, "s", "m", [[1, {"x": ["float32", [1], 9]}]], 0, None, "", "")],
            "field columns\\[0\\].tensors: tensor frame 9 does not exist", 5,
        ),
        (
            [header("Request", 6, "s", "m", [[1, {"x": ["float32", ["a"], 0]}]], 0, None, "", "")],
            "shape must hold integers", 6,
        ),
        (
            [header("Reply", 7, 0, [], [[0, ["weird", "x"]]], None)],
            "field failures\\[0\\].failure.kind: unknown ErrorKind 'weird'", 7,
        ),
        (
            [header("Request", True, "s", "m", [], 0, None, "", "")],
            "field request_id: expected int", None,
        ),
        ([header("Job", 8, "m", [], "soon", [], [])], "field timeout_ms: expected a number", None),
        (
            [header("Ready", "s", 1, [["m", [], [], [[1, 2], 2, 1.0, "x"]]], 2, "cpu", 1)],
            "field methods\\[0\\].batching.max_queue_size: expected int, not str", None,
        ),
    ],
)  # fmt: skip
def test_malformed_frames_raise_wire_error_naming_the_problem(
    frames: list[bytes], problem: str, request_id: int | None
) -> None:
    with pytest.raises(WireError, match=problem) as caught:
        decode(frames)
    assert caught.value.request_id == request_id


def test_the_header_is_derived_from_the_declaration() -> None:
    """Fields in declaration order; nested dataclasses as arrays; enums as their values."""
    (frame,) = encode(Reply(3, 1, failures=[RowFailure(0, Failure(ErrorKind.TIMEOUT, "late"))]))
    assert msgpack.unpackb(frame) == [
        PROTOCOL_VERSION,
        "Reply",
        3,
        1,
        [],
        [[0, ["timeout", "late"]]],
        None,
    ]
    (frame,) = encode(Ready("s", 1, (SIGNATURE,), 2, "cpu", 9))
    assert msgpack.unpackb(frame)[4][0][3] == [[1, 2, 4], 4, 1.5, 99]


@dataclass(frozen=True)
class _Extended:
    """A nested type with a field the codec has never seen."""

    name: str
    weights: tuple[float, ...] = ()
    kind: ErrorKind = ErrorKind.INTERNAL


def test_new_fields_and_nested_types_need_no_codec_change() -> None:
    codec = wire._codec(list[_Extended | None])
    frames: list = []
    value = [_Extended("a", (1.0, 2.5), ErrorKind.TIMEOUT), None]
    plain = codec.encode(value, frames)
    assert plain == [["a", [1.0, 2.5], "timeout"], None]
    assert codec.decode(msgpack.unpackb(msgpack.packb(plain)), frames) == value


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    command=st.sampled_from([type(message).__name__ for message in MESSAGES]),
    fields=st.lists(json_like, max_size=7),
    extra=st.lists(st.binary(max_size=16), max_size=3),
)
def test_random_headers_never_raise_anything_but_wire_error(
    command: str, fields: list[object], extra: list[bytes]
) -> None:
    with contextlib.suppress(WireError):
        decode([header(command, *fields), *extra])


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    message=st.sampled_from(MESSAGES),
    path=st.lists(st.integers(0, 7), min_size=1, max_size=4),
    replacement=json_like,
)
def test_valid_messages_with_one_value_replaced_raise_only_wire_error(
    message: Message, path: list[int], replacement: object
) -> None:
    """Deep mutations of real headers reach the nested decoders (tensors, signatures...)."""
    header_frame, *frames = encode(message)
    plain = msgpack.unpackb(header_frame)
    node = plain
    for step in path[:-1]:
        if not isinstance(node, list) or not node:
            break
        child = node[step % len(node)]
        if not isinstance(child, list):
            break
        node = child
    if isinstance(node, list) and node:
        node[path[-1] % len(node)] = replacement
    with contextlib.suppress(WireError):
        decode([msgpack.packb(plain, use_bin_type=True), *frames])


@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_wire_error(raw: bytes) -> None:
    with contextlib.suppress(WireError):
        decode([raw])
