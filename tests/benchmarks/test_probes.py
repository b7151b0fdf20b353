"""`msq.benchmarks.probes`: the known-answer requests and reading each protocol's answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from msq.benchmarks.probes import (
    PATHS,
    known_requests,
    read_ms_grpc,
    read_ms_rest,
    read_v2_grpc,
    read_v2_rest,
)
from msq.benchmarks.tally import Failed
from msq.gateways.rest.v2_codec import HEADER_LENGTH
from msq.proto import grpc_predict_v2_pb2 as v2_pb
from msq.proto import ms_service_pb2 as ms_pb

Y = np.arange(8, dtype=np.float32).reshape(2, 2, 2)


@pytest.mark.parametrize("path", PATHS)
def test_the_pool_is_seeded_and_distinct(path: str) -> None:
    pool = known_requests(path, seed=1, count=8)
    again = known_requests(path, seed=1, count=8)
    assert [k.body for k in pool] == [k.body for k in again]
    assert len({k.body for k in pool}) == 8
    assert all(len(k.expected) == 2 and k.expected[0].shape == (2, 2) for k in pool)
    assert known_requests(path, seed=2, count=1)[0].body != pool[0].body


def test_ms_grpc_answers_and_errors() -> None:
    reply = ms_pb.PredictReply()
    for y in Y:
        tensor = reply.instances.add().items["y"]
        tensor.dtype, tensor.data = ms_pb.MS_FLOAT32, y.tobytes()
        tensor.shape.dims.extend([2, 2])
    answer = read_ms_grpc(reply.SerializeToString())
    assert isinstance(answer, list)
    assert [a.tolist() for a in answer if a is not None] == Y.tolist()
    failed = ms_pb.PredictReply()
    failed.error_msg.add(error_code=1, error_msg=b"request timed out after 5000 ms")
    assert read_ms_grpc(failed.SerializeToString()) == Failed(
        "ms FAILED: request timed out after N ms"
    )


def test_v2_grpc_answers() -> None:
    response = v2_pb.ModelInferResponse(raw_output_contents=[Y.tobytes()])
    answer = read_v2_grpc(response.SerializeToString())
    assert isinstance(answer, list)
    assert [a.tolist() for a in answer if a is not None] == Y.tolist()
    assert read_v2_grpc(b"") == Failed("v2 no outputs")


def test_rest_answers_and_errors() -> None:
    body = json.dumps({"instances": [{"y": y.tolist()} for y in Y]}).encode()
    answer = read_ms_rest(200, body, {})
    assert isinstance(answer, list)
    assert [a.tolist() for a in answer if a is not None] == Y.tolist()
    error = json.dumps({"error_msg": "broker at tcp://127.0.0.1:5555 is not reachable"}).encode()
    assert read_ms_rest(200, error, {}) == Failed(
        "http 200 error_msg: broker at tcp://N.N.N.N:N is not reachable"
    )
    assert read_ms_rest(502, b"<html>Bad Gateway</html>", {}) == Failed("http 502: not JSON")
    header = json.dumps({"outputs": [{"name": "y"}]}).encode()
    answer = read_v2_rest(200, header + Y.tobytes(), {HEADER_LENGTH: str(len(header))})
    assert isinstance(answer, list)
    assert [a.tolist() for a in answer if a is not None] == Y.tolist()
    timeout = json.dumps({"error": "request timed out after 5.0 s"}).encode()
    assert read_v2_rest(504, timeout, {}) == Failed("http 504: request timed out after N.N s")
