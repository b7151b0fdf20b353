"""MindSpore Serving instances over the columnar link: a reply's rows merged with decoding
failures, and the columnar path answering byte for byte as the per-instance one did: both
gateways' encoders against answers written one instance at a time (no sockets)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from msq.gateways.core.errors import error_status
from msq.gateways.core.instances import merge_outcomes
from msq.gateways.grpc.ms_service import fill_reply
from msq.gateways.rest.ms_json import dump_json, reply_document, tensor_json
from msq.proto import ms_service_pb2 as pb
from msq.proto.codec import from_wire, to_wire
from msq.proto.columns import Outcomes, split, stack, take_rows
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Columns, Instance, InstanceOutcome, Reply, RowFailure
from msq.proto.ms_tensors import fill_ms_tensor

BAD = Failure(ErrorKind.INVALID_INPUT, "input x: bad")
GONE = Failure(ErrorKind.NOT_FOUND, "servable is not available")


def test_merge_keeps_local_failures_in_place() -> None:
    column = to_wire(np.array([1, 3], np.int8))
    merged = merge_outcomes([{}, BAD, {}], Reply(1, 1, [Columns(2, {"y": column})]))
    assert merged == Outcomes([Columns(2, {"y": column})], [RowFailure(1, BAD)], 3)
    first, bad, third = merged.rows()
    assert bad == BAD
    assert [from_wire(o["y"]) for o in (first, third)] == [1, 3]  # type: ignore[index]
    assert merge_outcomes([BAD, BAD], None) == Outcomes(
        [], [RowFailure(0, BAD), RowFailure(1, BAD)], 2
    )
    whole = merge_outcomes([{}, BAD, {}], Reply(1, error=GONE))
    assert whole.rows() == [GONE, BAD, GONE]


def test_the_replys_failed_rows_are_numbered_over_the_whole_request() -> None:
    model_error = Failure(ErrorKind.MODEL_ERROR, "boom")
    column = to_wire(np.array([10, 30], np.int64))
    reply = Reply(1, 1, [Columns(2, {"y": column})], [RowFailure(1, model_error)])
    merged = merge_outcomes([BAD, {}, {}, {}], reply)
    assert merged.failures == [RowFailure(0, BAD), RowFailure(2, model_error)]
    assert merge_outcomes([{}, {}, {}], reply) == Outcomes(reply.columns, reply.failures, 3)
    rows = merged.rows()
    assert [int(from_wire(rows[row]["y"])) for row in (1, 3)] == [10, 30]  # type: ignore[index, arg-type]


# --- the columnar path answers as the per-instance one --------------------------------------

DTYPES = ("float32", "float64", "int8", "uint16", "int64", "bool")
layouts = st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 3), max_size=2).map(tuple))
KINDS = ("good", "good", "text", "undecodable", "model error")


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[InstanceOutcome], set[int]]:
    """Decoded instances (some failed to decode) of a few layouts, in runs, and the numbers
    (input `k`) of those the model fails."""
    shared = draw(st.lists(layouts, min_size=1, max_size=3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    decoded: list[InstanceOutcome] = []
    failing: set[int] = set()
    for number, kind in enumerate(draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=40))):
        if kind == "undecodable":
            decoded.append(Failure(ErrorKind.INVALID_INPUT, f"input x: bad {number % 2}"))
            continue
        if kind == "text":
            x = to_wire(f"text {number}")
        else:
            dtype, shape = draw(st.sampled_from(shared))
            x = to_wire(rng.integers(0, 100, shape).astype(dtype))
        decoded.append({"x": x, "k": to_wire(np.int32(number))})
        if kind == "model error":
            failing.add(number)
    return decoded, failing


def run(rows: list[Instance], failing: set[int]) -> list[InstanceOutcome]:
    """A stand-in model: echoes `x` and `k`, fails the instances numbered in `failing`
    (alike, or each in its own words)."""
    outcomes: list[InstanceOutcome] = []
    for row in rows:
        number = int(from_wire(row["k"]))  # type: ignore[arg-type]
        if number in failing:
            message = "boom" if number % 3 else f"boom {number}"
            outcomes.append(Failure(ErrorKind.MODEL_ERROR, message))
        else:
            outcomes.append({"y": row["x"], "k": row["k"]})
    return outcomes


def predict_reply_per_instance(outcomes: list[InstanceOutcome]) -> bytes:
    """The `PredictReply` as written one instance at a time (the reference)."""
    reply = pb.PredictReply()
    failures = [outcome for outcome in outcomes if isinstance(outcome, Failure)]
    if len(failures) == len(outcomes) and len(set(failures)) == 1:
        code = error_status(failures[0].kind).ms_code
        reply.error_msg.add(error_code=code, error_msg=failures[0].message.encode())
        return bytes(reply.SerializeToString())
    for outcome in outcomes:
        instance = reply.instances.add()
        if isinstance(outcome, Failure):
            code = error_status(outcome.kind).ms_code
            reply.error_msg.add(error_code=code, error_msg=outcome.message.encode())
            continue
        if failures:
            reply.error_msg.add(error_code=0, error_msg=b"")
        for name, tensor in outcome.items():
            fill_ms_tensor(tensor, instance.items[name])
    return bytes(reply.SerializeToString())


def rest_answer_per_instance(outcomes: list[InstanceOutcome]) -> tuple[bytes, Failure | None]:
    """The MindSpore Serving REST answer as written one instance at a time (the reference)."""
    failures = [outcome for outcome in outcomes if isinstance(outcome, Failure)]
    if len(failures) == len(outcomes) and len({f.message for f in failures}) == 1:
        return dump_json({"error_msg": failures[0].message}), failures[0]
    instances = [
        {"error_msg": o.message}
        if isinstance(o, Failure)
        else {name: tensor_json(tensor) for name, tensor in o.items()}
        for o in outcomes
    ]
    return dump_json({"instances": instances}), None


@settings(max_examples=150, deadline=None)
@given(requests(), st.integers(1, 16))
def test_columns_answer_exactly_as_instances_did(
    request: tuple[list[InstanceOutcome], set[int]], job_size: int
) -> None:
    decoded, failing = request
    per_instance = [
        outcome if isinstance(outcome, Failure) else run([outcome], failing)[0]
        for outcome in decoded
    ]
    valid = [outcome for outcome in decoded if not isinstance(outcome, Failure)]
    columns = stack(valid)
    assert [
        {name: (t.dtype, t.shape, bytes(t.data)) for name, t in row.items()}
        for row in split(columns)
    ] == [{name: (t.dtype, t.shape, bytes(t.data)) for name, t in v.items()} for v in valid]
    jobs = [  # the request's rows in jobs of `job_size`, as the broker cuts them
        Outcomes.of(run(split(take_rows(columns, start, start + job_size)), failing))
        for start in range(0, len(valid), job_size)
    ]
    answer = Outcomes.join(jobs)
    assert answer.problem() is None
    reply = Reply(1, 1, answer.columns, answer.failures) if valid else None
    columnar = merge_outcomes(decoded, reply)
    reply_message = pb.PredictReply()
    fill_reply(reply_message, columnar)
    assert reply_message.SerializeToString() == predict_reply_per_instance(per_instance)
    document, failure = reply_document(columnar)
    assert (dump_json(document), failure) == rest_answer_per_instance(per_instance)
