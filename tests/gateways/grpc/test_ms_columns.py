"""Requests read straight into columns and replies written straight from them agree with
protobuf and with the instance-by-instance path (no sockets)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from msq.gateways.grpc.ms_columns import MIN_ROWS, read_uniform, write_reply
from msq.gateways.grpc.ms_service import decode_instance, fill_reply
from msq.gateways.grpc.wire import RawPredictRequest, parse_predict_request, parse_with_protobuf
from msq.proto import ms_service_pb2 as pb
from msq.proto.codec import WireTensor
from msq.proto.columns import Outcomes, stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, RowFailure
from msq.proto.ms_tensors import DTYPE_OF_MS, MS_OF_DTYPE

NUMERIC = [code for code, name in DTYPE_OF_MS.items() if name not in ("str", "bytes")]


def _tensor(code: int, dims: tuple[int, ...], seed: int) -> pb.Tensor:
    dtype = np.dtype(DTYPE_OF_MS[code])
    data = np.random.default_rng(seed).integers(0, 256, int(np.prod(dims)) * dtype.itemsize)
    tensor = pb.Tensor(dtype=code)  # type: ignore[arg-type]
    tensor.shape.dims.extend(dims)
    tensor.data = data.astype(np.uint8).tobytes()
    return tensor


Layout = list[tuple[str, int, tuple[int, ...]]]
layouts = st.lists(
    st.tuples(
        st.sampled_from(["x", "x1", "x2", "image", "é"]),
        st.sampled_from(NUMERIC),
        st.lists(st.integers(0, 4), max_size=3).map(tuple),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda item: item[0],
)


def _instance(request: pb.PredictRequest, layout: Layout, seed: int) -> pb.Instance:
    instance = request.instances.add()
    for offset, (name, code, dims) in enumerate(layout):
        instance.items[name].CopyFrom(_tensor(code, dims, seed * 7 + offset))
    return instance


def _same_columns(a: list[Columns], b: list[Columns]) -> bool:
    return [(p.count, {n: (t.dtype, t.shape, bytes(t.data)) for n, t in p.tensors.items()})
            for p in a] == [(p.count, {n: (t.dtype, t.shape, bytes(t.data))
                                       for n, t in p.tensors.items()}) for p in b]  # fmt: skip


def _read(message: bytes) -> tuple[tuple[str, str, int], list[Columns], list[int]]:
    raw: RawPredictRequest = parse_predict_request(message)
    spec = (raw.name, raw.method_name, raw.version_number)
    event(f"read as columns: {raw.columns is not None}")
    if raw.columns is not None:
        return spec, [raw.columns], []
    decoded = [decode_instance(instance) for instance in raw.instances or raw.legacy_instances]
    failed = [row for row, outcome in enumerate(decoded) if isinstance(outcome, Failure)]
    return spec, stack([o for o in decoded if not isinstance(o, Failure)]), failed


@settings(max_examples=200, deadline=None)
@given(
    layout=layouts,
    count=st.integers(1, 40),
    odd=st.one_of(st.none(), st.integers(0, 39)),
    odd_kind=st.sampled_from(["layout", "string", "size", "shm", "unknown", "twice"]),
    spec_at=st.sampled_from(["first", "last", "both", "none"]),
    seed=st.integers(0, 1000),
)
def test_any_request_decodes_as_instance_by_instance(
    layout: Layout, count: int, odd: int | None, odd_kind: str, spec_at: str, seed: int
) -> None:
    request = pb.PredictRequest()
    for row in range(count):
        instance = _instance(request, layout, seed + row)
        if row != odd:
            continue
        name = layout[0][0]
        if odd_kind == "layout":
            instance.items["other"].CopyFrom(_tensor(NUMERIC[0], (1,), row))
        elif odd_kind == "string":
            instance.items[name].Clear()
            instance.items[name].dtype = pb.MS_STRING
            instance.items[name].bytes_val.append(b"text")
        elif odd_kind == "size":
            instance.items[name].data += b"\x00"
        elif odd_kind == "shm":
            instance.items[name].shm_data.memory_key = "k"
    body = request.SerializeToString()
    spec = pb.PredictRequest(servable_spec=pb.ServableSpec(name="s", method_name="m",
                                                          version_number=seed))  # fmt: skip
    later = pb.PredictRequest(servable_spec=pb.ServableSpec(version_number=seed + 1))
    if odd is not None and odd_kind == "unknown":
        body += b"\xa0\x06\x01"  # field 100, a varint: skipped by protobuf
    if odd is not None and odd_kind == "twice":  # the first instance again, at the end
        body += pb.PredictRequest(instances=[request.instances[0]]).SerializeToString()
    message = {
        "first": spec.SerializeToString() + body,
        "last": body + spec.SerializeToString(),
        "both": spec.SerializeToString() + body + later.SerializeToString(),
        "none": body,
    }[spec_at]
    expected_spec, expected_columns, expected_failed = _expected(message)
    spec_read, columns, failed = _read(message)
    assert spec_read == expected_spec
    assert failed == expected_failed
    assert _same_columns(columns, expected_columns)


def _expected(message: bytes) -> tuple[tuple[str, str, int], list[Columns], list[int]]:
    """The instance-by-instance path, through protobuf's parser."""
    raw = parse_with_protobuf(message)
    outcomes = [decode_instance(items) for items in raw.instances or raw.legacy_instances]
    failed = [row for row, outcome in enumerate(outcomes) if isinstance(outcome, Failure)]
    good = [outcome for outcome in outcomes if not isinstance(outcome, Failure)]
    return (raw.name, raw.method_name, raw.version_number), stack(good), failed


@pytest.mark.parametrize("count", [MIN_ROWS, 32, 300])
def test_instances_of_one_layout_become_columns_with_their_values(count: int) -> None:
    rng = np.random.default_rng(count)
    x = rng.standard_normal((count, 784)).astype(np.float32)
    ids = rng.integers(-(2**40), 2**40, (count, 2, 3))
    request = pb.PredictRequest(servable_spec=pb.ServableSpec(name="mlp", method_name="predict"))
    for row in range(count):
        instance = request.instances.add()
        instance.items["x"].CopyFrom(_wire(x[row]))
        instance.items["ids"].CopyFrom(_wire(ids[row]))
    uniform = read_uniform(request.SerializeToString())
    assert uniform is not None
    columns = uniform.columns
    assert columns.count == count
    assert columns.tensors["x"].shape == (count, 784) and columns.tensors["x"].dtype == "float32"
    assert bytes(columns.tensors["x"].data) == x.tobytes()
    assert columns.tensors["ids"].shape == (count, 2, 3)
    assert bytes(columns.tensors["ids"].data) == ids.astype(np.int64).tobytes()
    assert parse_predict_request(request.SerializeToString()).columns == columns


def _wire(value: np.ndarray) -> pb.Tensor:
    tensor = pb.Tensor(dtype=MS_OF_DTYPE[value.dtype.name])
    tensor.shape.dims.extend(value.shape)
    tensor.data = value.tobytes()
    return tensor


def test_few_or_mixed_instances_and_malformed_messages_are_left_to_protobuf() -> None:
    request = pb.PredictRequest()
    for row in range(MIN_ROWS - 1):
        request.instances.add().items["x"].CopyFrom(_wire(np.full(3, row, np.float32)))
    assert read_uniform(request.SerializeToString()) is None
    request.instances.add().items["x"].CopyFrom(_wire(np.full(3, 9, np.float32)))
    message = request.SerializeToString()
    assert read_uniform(message) is not None
    assert read_uniform(message[:-1]) is None  # truncated
    request.instances.add().items["x"].CopyFrom(_wire(np.full(4, 9, np.float32)))
    assert read_uniform(request.SerializeToString()) is None  # a second layout follows
    legacy = pb.PredictRequest()
    legacy.legacy_instances.extend(request.instances[:MIN_ROWS])
    assert read_uniform(legacy.SerializeToString()) is None


# ------------------------------------------------------------------------------ replies

shapes = st.lists(st.integers(0, 3), max_size=3).map(tuple)
parts = st.lists(
    st.tuples(
        st.integers(1, 12),
        st.lists(st.tuples(st.sampled_from(["y", "label", "scores"]),
                           st.sampled_from(NUMERIC), shapes),
                 min_size=1, max_size=3, unique_by=lambda item: item[0]),
    ),
    min_size=1,
    max_size=3,
)  # fmt: skip


def _outcomes(drawn: list[tuple[int, Layout]], seed: int) -> Outcomes:
    columns = []
    for count, outputs in drawn:
        tensors = {}
        for offset, (name, code, dims) in enumerate(outputs):
            values = _tensor(code, (count, *dims), seed + offset)
            tensors[name] = WireTensor(DTYPE_OF_MS[code], (count, *dims), values.data)
        columns.append(Columns(count, tensors))
    return Outcomes(columns, [], sum(count for count, _ in drawn))


def _protobuf_reply(name: str, method: str, version: int, outcomes: Outcomes) -> pb.PredictReply:
    reply = pb.PredictReply()
    spec = reply.servable_spec
    spec.name, spec.method_name, spec.version_number = name, method, version
    fill_reply(reply, outcomes)
    return reply


@settings(max_examples=200, deadline=None)
@given(drawn=parts, version=st.integers(0, 2**64 - 1), name=st.text(max_size=8),
       seed=st.integers(0, 1000))  # fmt: skip
def test_replies_are_what_protobuf_writes(
    drawn: list[tuple[int, Layout]], version: int, name: str, seed: int
) -> None:
    outcomes = _outcomes(drawn, seed)
    written = write_reply(name, "predict", version, outcomes)
    if outcomes.count < MIN_ROWS:
        assert written is None
        return
    assert written is not None
    expected = _protobuf_reply(name, "predict", version, outcomes)
    assert pb.PredictReply.FromString(written) == expected
    if all(len(part.tensors) == 1 for part in outcomes.columns):  # map order is protobuf's own
        assert written == expected.SerializeToString()


def test_failed_rows_and_string_outputs_are_left_to_fill_reply() -> None:
    outcomes = _outcomes([(MIN_ROWS, [("y", pb.MS_FLOAT32, (2,))])], 1)
    assert write_reply("s", "m", 0, outcomes) is not None
    failure = RowFailure(0, Failure(ErrorKind.INVALID_INPUT, "bad"))
    failed = Outcomes(outcomes.columns, [failure], MIN_ROWS + 1)
    assert write_reply("s", "m", 0, failed) is None
    text = Columns(1, {"y": WireTensor("str", (1,), b"t")})
    assert write_reply("s", "m", 0, Outcomes([*outcomes.columns, text], [], MIN_ROWS + 1)) is None
