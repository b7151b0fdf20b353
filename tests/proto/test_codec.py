"""Tensor codec: every dtype, 0-d, empty and non-contiguous tensors, and no hidden copies."""

from __future__ import annotations

import numpy as np
import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from msq.proto.codec import (
    FRAME_THRESHOLD,
    NUMERIC_DTYPES,
    CodecError,
    WireTensor,
    check_wire,
    from_wire,
    to_wire,
)
from msq.proto.columns import split, stack
from msq.proto.messages import Request
from msq.proto.wire import decode, encode


def roundtrip(value: object) -> object:
    """Encode a value into a request, through its frames, and back."""
    frames = encode(Request(1, "s", "m", stack([{"v": to_wire(value)}])))
    (message,) = [decode([memoryview(f) for f in frames])]
    assert isinstance(message, Request)
    return from_wire(split(message.columns)[0]["v"])


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4)])
def test_every_numeric_dtype_and_shape_roundtrips(dtype: str, shape: tuple[int, ...]) -> None:
    value = (np.arange(int(np.prod(shape))) % 3).astype(dtype).reshape(shape)
    back = roundtrip(value)
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.dtype(dtype)
    assert back.shape == shape
    np.testing.assert_array_equal(back, value)


@pytest.mark.parametrize("value", ["", "héllo wörld", "x" * 70000], ids=len)
def test_strings_roundtrip(value: str) -> None:
    assert roundtrip(value) == value


@pytest.mark.parametrize("value", [b"", b"\x00\xff\x10", bytes(range(256)) * 300], ids=len)
def test_bytes_roundtrip(value: bytes) -> None:
    assert roundtrip(value) == value


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(True, "bool"), (7, "int64"), (2.5, "float64"), (np.float16(1.5), "float16")],
)
def test_python_and_numpy_scalars_become_0d_tensors(value: object, dtype: str) -> None:
    back = roundtrip(value)
    assert isinstance(back, np.ndarray)
    assert back.shape == ()
    assert back.dtype == np.dtype(dtype)
    assert back.item() == value


def test_non_contiguous_and_big_endian_arrays_arrive_as_their_values() -> None:
    base = np.arange(60, dtype=np.float32).reshape(6, 10)
    for value in (base[:, ::3], base.T, np.asfortranarray(base), base.astype(">i4")):
        back = roundtrip(value)
        np.testing.assert_array_equal(back, value)  # type: ignore[arg-type]


@given(hnp.arrays(st.sampled_from(NUMERIC_DTYPES), hnp.array_shapes(min_dims=0, max_side=5)))
def test_arbitrary_arrays_roundtrip(value: np.ndarray) -> None:
    np.testing.assert_array_equal(roundtrip(value), value)  # type: ignore[arg-type]


def test_large_tensor_is_neither_copied_on_send_nor_on_receive() -> None:
    value = np.random.default_rng(0).random((256, 256)).astype(np.float32)  # 256 KiB
    tensor = to_wire(value)
    assert tensor.data is value  # the array itself becomes the frame: no copy
    frames = encode(Request(1, "s", "m", stack([{"v": tensor}])))
    assert len(frames) == 2
    assert frames[1] is value
    context = zmq.Context.instance()
    sender, receiver = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    receiver.bind("inproc://codec-test")
    sender.connect("inproc://codec-test")
    try:
        sender.send_multipart(frames, copy=False)
        received = receiver.recv_multipart(copy=False)
    finally:
        sender.close(linger=0)
        receiver.close(linger=0)
    message = decode([frame.buffer for frame in received])
    assert isinstance(message, Request)
    back = from_wire(split(message.columns)[0]["v"])
    assert isinstance(back, np.ndarray)
    assert not back.flags.owndata  # a view of the received frame
    assert np.shares_memory(back, np.frombuffer(received[1].buffer, np.uint8))
    # inproc hands the message over without copying: the receiver sees the sender's memory.
    assert np.shares_memory(back, value)
    np.testing.assert_array_equal(back, value)


def test_small_tensors_are_inlined_in_the_header() -> None:
    frames = encode(
        Request(1, "s", "m", stack([{"v": to_wire(np.zeros(FRAME_THRESHOLD // 8 - 1))}]))
    )
    assert len(frames) == 1


@pytest.mark.parametrize(
    ("tensor", "problem"),
    [
        (WireTensor("float32", (2, 2), b"\x00" * 12), "data size 12 does not match shape [2, 2]"),
        (WireTensor("complex64", (1,), b"\x00" * 8), "unknown data type 'complex64'"),
        (WireTensor("int8", (-1,), b""), "invalid shape [-1]"),
        (WireTensor("str", (2,), b"ab"), "holds exactly one element"),
    ],
)
def test_inconsistent_tensors_are_refused_clearly(tensor: WireTensor, problem: str) -> None:
    with pytest.raises(CodecError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        check_wire(tensor)


def test_invalid_utf8_string_is_refused() -> None:
    with pytest.raises(CodecError, match="not valid UTF-8"):
        from_wire(WireTensor("str", (), b"\xff\xfe"))


def test_unsupported_values_are_refused() -> None:
    with pytest.raises(CodecError, match="cannot send a value of type dict"):
        to_wire({})
    with pytest.raises(CodecError, match="unsupported data type complex128"):
        to_wire(np.zeros(2, np.complex128))
