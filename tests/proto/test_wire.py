"""Message framing: every command round-trips; malformed frames raise WireError, nothing else."""

from __future__ import annotations

import contextlib

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msq.proto.codec import to_wire
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    BatchPolicy,
    Cancel,
    Disconnect,
    Heartbeat,
    Job,
    Message,
    MethodSignature,
    Ready,
    Reply,
    Request,
    Result,
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
    Request(7, "model", "predict", [{"x": to_wire(BIG), "s": to_wire("hi")}], 2, 1500.0),
    Reply(7, 2, [{"y": to_wire(BIG)}, Failure(ErrorKind.MODEL_ERROR, "boom")]),
    Reply(8, 0, error=Failure(ErrorKind.NOT_FOUND, "servable is not available")),
    Cancel(7),
    Job(11, "predict", 4, [{"x": to_wire(np.ones((1, 3), np.float32))}]),
    Result(11, [{"y": to_wire(b"\x00raw")}], compute_ms=3.5),
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


def header(**fields: object) -> bytes:
    return msgpack.packb({"v": 1, **fields}, use_bin_type=True)


@pytest.mark.parametrize(
    ("frames", "problem", "request_id"),
    [
        ([], "empty message", None),
        ([b"\xc1\xff"], "not valid msgpack", None),
        ([msgpack.packb([1, 2])], "not a map", None),
        ([msgpack.packb({"v": 99, "c": "hb"})], "protocol version 99", None),
        ([header(c="nope", id=3)], "unknown command 'nope'", 3),
        ([header(c="req", id=4, servable="s", method="m", version=0)], "'instances'", 4),
        (
            [header(c="req", id=5, servable="s", method="m", version=0,
                    instances=[{"x": ["float32", [1], 9]}])],
            "tensor frame 9 does not exist", 5,
        ),
        (
            [header(c="req", id=6, servable="s", method="m", version=0,
                    instances=[{"x": ["float32", ["a"], b""]}])],
            "shape must hold integers", 6,
        ),
        ([header(c="rep", id=7, version=0, outcomes=[["weird", "x"]])], "unknown error kind", 7),
        ([header(c="req", id=True, servable="s")], "field 'id'", None),
    ],
)  # fmt: skip
def test_malformed_frames_raise_wire_error_naming_the_problem(
    frames: list[bytes], problem: str, request_id: int | None
) -> None:
    with pytest.raises(WireError, match=problem) as caught:
        decode(frames)
    assert caught.value.request_id == request_id


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
    command=st.sampled_from(["ready", "hb", "bye", "req", "rep", "cancel", "job", "res",
                             "status?", "status"]),
    fields=st.dictionaries(
        st.sampled_from(["id", "servable", "method", "version", "instances", "outcomes",
                         "methods", "capacity", "device", "pid", "batch_size", "compute_ms",
                         "error", "reason", "timeout_ms", "servables", "stats"]),
        json_like, max_size=8),
    extra=st.lists(st.binary(max_size=16), max_size=3),
)  # fmt: skip
def test_random_headers_never_raise_anything_but_wire_error(
    command: str, fields: dict[str, object], extra: list[bytes]
) -> None:
    with contextlib.suppress(WireError):
        decode([header(c=command, **fields), *extra])


@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_wire_error(raw: bytes) -> None:
    with contextlib.suppress(WireError):
        decode([raw])
