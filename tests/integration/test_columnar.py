"""Columns and single instances give the same answers, through the real processes.

A request's instances travel as stacked columns (gateway -> broker -> worker -> back); the same
instances sent one request each travel as one-row columns. Every answer must be the same, for
any mix of instance counts (requests spanning several jobs), layouts, and good and bad
instances, through MindSpore Serving gRPC and V2 gRPC on the session's gRPC stack.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msq.client import Client
from tests.gateways.grpc_processes import GrpcStack

pytestmark = pytest.mark.usefixtures("grpc_stack")

#: One instance of add's methods: (x1, x2, what kind of instance it is).
GOOD = "good"
ADD_KINDS = [GOOD, GOOD, GOOD, "wide", "flat", "int32", "float64"]


def _add_instance(kind: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = {"wide": (2, 3), "flat": (4,)}.get(kind, (2, 2))
    dtype = {"int32": np.int32, "float64": np.float64}.get(kind, np.float32)
    x1 = (rng.integers(-50, 50, size=shape)).astype(dtype)
    x2 = (rng.integers(-50, 50, size=shape)).astype(dtype)
    return {"x1": x1, "x2": x2}


def _alone(client: Client, instance: dict[str, np.ndarray]) -> object:
    """The answer to the instance sent as a request of its own, as the batch reports it."""
    answer = client.infer(instance)
    if isinstance(answer, dict):  # the request failed: its one instance's error
        return answer
    (result,) = answer
    return result


def _same(batch: object, alone: object) -> bool:
    if isinstance(batch, dict) and "error" in batch:
        return batch == alone
    assert isinstance(batch, dict) and isinstance(alone, dict), (batch, alone)
    return batch.keys() == alone.keys() and all(
        np.array_equal(batch[name], alone[name]) and batch[name].dtype == alone[name].dtype
        for name in batch
    )


@pytest.mark.parametrize("method", ["add_common", "add_cast"])
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_request_answers_each_instance_as_it_would_alone(
    grpc_stack: GrpcStack, method: str, data: st.DataObject
) -> None:
    kinds = data.draw(st.lists(st.sampled_from(ADD_KINDS), min_size=2, max_size=40))
    instances = [_add_instance(kind, seed) for seed, kind in enumerate(kinds)]
    client = Client(grpc_stack.address, "add", method)
    batch = client.infer(instances)
    alone = [_alone(client, instance) for instance in instances]
    if (
        all(isinstance(result, dict) and "error" in result for result in alone)
        and len({str(result) for result in alone}) == 1
    ):
        # every instance failed the same way: MindSpore Serving answers with that one error
        assert batch == alone[0]
        return
    assert isinstance(batch, list) and len(batch) == len(instances)
    for index, (together, single) in enumerate(zip(batch, alone, strict=True)):
        assert _same(together, single), (index, kinds[index], together, single)
    for together, kind, instance in zip(batch, kinds, instances, strict=True):
        if kind == GOOD or (method == "add_cast" and kind in ("int32", "float64")):
            expected = instance["x1"].astype(np.float32) + instance["x2"].astype(np.float32)
            assert np.array_equal(together["y"], expected)


@pytest.mark.parametrize("kind", [GOOD, "wide", "int32"])
@pytest.mark.parametrize("method", ["add_common", "add_cast"])
def test_instances_of_one_layout_answer_as_they_would_alone(
    grpc_stack: GrpcStack, method: str, kind: str
) -> None:
    """Read straight into columns and answered straight from them (`ms_columns`), or every
    instance failing the same way: the answers are those of each instance alone."""
    instances = [_add_instance(kind, seed) for seed in range(20)]
    client = Client(grpc_stack.address, "add", method)
    batch = client.infer(instances)
    alone = [_alone(client, instance) for instance in instances]
    if isinstance(batch, dict):  # one error for all, as MindSpore Serving answers
        assert kind == "wide" or (method == "add_common" and kind == "int32")
        assert all(result == batch for result in alone)
        return
    assert isinstance(batch, list) and len(batch) == len(instances)
    for together, single, instance in zip(batch, alone, instances, strict=True):
        assert _same(together, single)
        expected = instance["x1"].astype(np.float32) + instance["x2"].astype(np.float32)
        assert np.array_equal(together["y"], expected)


def _same_digit(batch: object, alone: object) -> bool:
    """The same digit answer; scores may differ in the last bits, as a batched model call sums
    in another order than a call on one row."""
    assert isinstance(batch, dict) and isinstance(alone, dict), (batch, alone)
    return (
        batch["label"] == alone["label"]
        and np.array_equal(batch["classes"], alone["classes"])
        and np.allclose(batch["scores"], alone["scores"], rtol=1e-5, atol=1e-6)
    )


def _digits(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 16, size=(count, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("count", [1, 63, 64, 65, 150])
def test_digits_in_one_request_span_jobs_and_match_single_requests(
    grpc_stack: GrpcStack, count: int
) -> None:
    pixels = _digits(count, count)
    client = Client(grpc_stack.address, "digits", "predict")
    batch = client.infer([{"pixels": row} for row in pixels])
    assert isinstance(batch, list) and len(batch) == count
    sample = range(0, count, max(1, count // 7))
    for index in sample:
        (alone,) = client.infer({"pixels": pixels[index]})  # type: ignore[misc]
        assert _same_digit(batch[index], alone), index


def test_a_v2_batch_matches_the_same_rows_sent_one_by_one(grpc_stack: GrpcStack) -> None:
    pixels = _digits(70, 7)
    triton = triton_grpc.InferenceServerClient(grpc_stack.address)
    tensor = triton_grpc.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels)
    answer = triton.infer("digits.predict", [tensor])
    labels = answer.as_numpy("label")
    classes, scores = answer.as_numpy("classes"), answer.as_numpy("scores")
    assert labels.shape == (70,) and classes.shape == scores.shape == (70, 3)
    client = Client(grpc_stack.address, "digits", "predict")
    for index in (0, 1, 33, 69):
        (alone,) = client.infer({"pixels": pixels[index]})  # type: ignore[misc]
        assert _same_digit(
            {"label": labels[index], "classes": classes[index], "scores": scores[index]}, alone
        )
