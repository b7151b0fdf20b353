"""The bundled example servables through a real broker and real MindSpore workers."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from msq.gateways.core.link import BrokerLink
from msq.proto.codec import from_wire, to_wire
from msq.proto.columns import stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import Reply
from tests.integration.linking import infer, instance_outcomes, values, with_link
from tests.processes import EXAMPLES, Cluster


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray, float]:
    """The digits model's held-out split (pixels as `predict` takes them: float32 [n, 8, 8]),
    and the accuracy its training script recorded."""
    metrics = json.loads((EXAMPLES / "digits" / "1" / "metrics.json").read_text())
    digits = load_digits()
    split = metrics["split"]
    _, x_test, _, y_test = train_test_split(
        digits.data, digits.target, test_size=split["test_size"],
        random_state=split["random_state"], stratify=digits.target,
    )  # fmt: skip
    return x_test.astype(np.float32).reshape(-1, 8, 8), y_test, float(metrics["test_accuracy"])


def test_add_gives_exact_sums(examples_cluster: Cluster) -> None:
    x1 = np.array([[1.5, -2.0], [3.25, 0.0]], np.float32)
    x2 = np.array([[0.5, 2.0], [-1.25, 7.0]], np.float32)
    (outcome,) = values(
        infer(examples_cluster.frontend, "add", "add_common", [{"x1": x1, "x2": x2}])
    )
    assert isinstance(outcome, dict)
    np.testing.assert_array_equal(outcome["y"], [[2.0, 0.0], [2.0, 7.0]])


def test_add_many_instances_in_order_and_with_the_cast_stage(examples_cluster: Cluster) -> None:
    instances = [
        {"x1": np.full((2, 2), i, np.int32), "x2": np.full((2, 2), 0.5 * i, np.float32)}
        for i in range(40)
    ]
    outcomes = values(infer(examples_cluster.frontend, "add", "add_cast", instances))
    assert [float(o["y"][0, 0]) for o in outcomes] == [1.5 * i for i in range(40)]  # type: ignore[index]


@pytest.mark.parametrize(
    ("servable", "method", "version", "message"),
    [
        ("nope", "add_common", 0, "servable is not available"),
        ("add", "add_common", 9, "servable is not available: 'add' version 9 is not served"),
        ("add", "nope", 0, "method is not available"),
    ],
)
def test_unknown_servable_version_and_method(
    examples_cluster: Cluster, servable: str, method: str, version: int, message: str
) -> None:
    x = np.ones((2, 2), np.float32)
    reply = infer(
        examples_cluster.frontend, servable, method, [{"x1": x, "x2": x}], version=version
    )
    assert reply.error is not None
    assert reply.error.kind is ErrorKind.NOT_FOUND
    assert message in reply.error.message


def test_a_bad_instance_among_good_ones_fails_alone(examples_cluster: Cluster) -> None:
    good = {"x1": np.ones((2, 2), np.float32), "x2": np.ones((2, 2), np.float32)}
    instances = [
        good,
        {"x1": np.ones((2, 2), np.float32)},
        {"x1": np.ones((3, 2), np.float32), "x2": np.ones((2, 2), np.float32)},
        {"x1": np.ones((2, 2), np.int32), "x2": np.ones((2, 2), np.float32)},
        good,
    ]
    outcomes = values(infer(examples_cluster.frontend, "add", "add_common", instances))
    assert isinstance(outcomes[0], dict)
    assert isinstance(outcomes[4], dict)
    np.testing.assert_array_equal(outcomes[4]["y"], np.full((2, 2), 2.0))
    problems = [o.message for o in outcomes[1:4] if isinstance(o, Failure)]
    assert problems == [
        "Cannot find input x2 in instance input",
        "Given model input x1 (index 0) size 24 not match the size 16 defined in model",
        "Given model input x1 (index 0) data type int32 not match the data type float32 "
        "defined in model",
    ]


def test_digits_reproduce_the_recorded_held_out_accuracy(
    examples_cluster: Cluster, held_out: tuple[np.ndarray, np.ndarray, float]
) -> None:
    x_test, y_test, accuracy = held_out
    instances = [{"pixels": row.reshape(8, 8)} for row in x_test]
    outcomes = values(infer(examples_cluster.frontend, "digits", "predict", instances))
    labels = np.array([int(o["label"]) for o in outcomes])  # type: ignore[index, call-overload]
    assert float(np.mean(labels == y_test)) == pytest.approx(accuracy, abs=1e-9)


def _one_at_a_time(frontend: str, rows: np.ndarray) -> list[Reply]:
    async def use(link: BrokerLink) -> list[Reply]:
        return [
            await link.infer("digits", "predict", stack([{"pixels": to_wire(row)}])) for row in rows
        ]

    return with_link(frontend, use)


def _all_at_once(frontend: str, rows: np.ndarray) -> list[Reply]:
    async def use(link: BrokerLink) -> list[Reply]:
        calls = [link.infer("digits", "predict", stack([{"pixels": to_wire(row)}])) for row in rows]
        return list(await asyncio.gather(*calls))

    return with_link(frontend, use)


def _route_stats(frontend: str, method: str) -> dict[str, object]:
    status = with_link(frontend, lambda link: link.status())
    assert status is not None
    (route,) = [r for r in status.stats["routes"] if r["method"] == method]  # type: ignore[attr-defined, index]
    return route  # type: ignore[no-any-return]


def test_concurrent_single_instance_requests_are_batched_and_match_unbatched_results(
    examples_cluster: Cluster, held_out: tuple[np.ndarray, np.ndarray, float]
) -> None:
    rows = held_out[0][:64]
    unbatched = _one_at_a_time(examples_cluster.frontend, rows)
    before = _route_stats(examples_cluster.frontend, "predict")
    batched = _all_at_once(examples_cluster.frontend, rows)
    after = _route_stats(examples_cluster.frontend, "predict")
    jobs = after["executions"] - before["executions"]  # type: ignore[operator]
    instances = after["instances"] - before["instances"]  # type: ignore[operator]
    assert instances == 64
    assert instances / jobs > 8, f"{jobs} jobs for 64 instances: {after['job_sizes']}"
    for single, batch in zip(unbatched, batched, strict=True):
        (one,), (other,) = instance_outcomes(single), instance_outcomes(batch)
        assert isinstance(one, dict)
        assert isinstance(other, dict)
        assert from_wire(one["label"]) == from_wire(other["label"])
        np.testing.assert_allclose(from_wire(one["scores"]), from_wire(other["scores"]), rtol=1e-5)  # type: ignore[arg-type]


def test_a_thousand_instance_request_returns_every_result_in_order(
    examples_cluster: Cluster, held_out: tuple[np.ndarray, np.ndarray, float]
) -> None:
    x_test = held_out[0]
    rows = np.concatenate([x_test, x_test, x_test])[:1000]
    expected = [from_wire(instance_outcomes(r)[0]["label"]) for r in _one_at_a_time(  # type: ignore[index]
        examples_cluster.frontend, x_test)]  # fmt: skip
    reply = infer(examples_cluster.frontend, "digits", "predict", [{"pixels": r} for r in rows])
    labels = [int(o["label"]) for o in values(reply)]  # type: ignore[index, call-overload]
    assert len(labels) == 1000
    assert labels == [int(expected[i % len(x_test)]) for i in range(1000)]  # type: ignore[call-overload]


def _png(pixels: np.ndarray) -> bytes:
    grey = np.round(pixels.reshape(8, 8) * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_job_mixing_good_and_bad_images_fails_only_the_bad_ones(
    examples_cluster: Cluster, held_out: tuple[np.ndarray, np.ndarray, float]
) -> None:
    x_test, y_test, _ = held_out
    images: list[bytes] = [_png(x_test[0]), b"not an image", _png(x_test[1]), b"\x89PNG\r\n"]
    outcomes = values(
        infer(examples_cluster.frontend, "digits", "predict_image", [{"image": i} for i in images])
    )
    good = [o for o in outcomes if isinstance(o, dict)]
    assert [int(o["label"]) for o in good] == [y_test[0], y_test[1]]  # type: ignore[call-overload]
    bad = [o for o in outcomes if isinstance(o, Failure)]
    assert [o is outcomes[1] or o is outcomes[3] for o in bad] == [True, True]
    assert all(o.kind is ErrorKind.MODEL_ERROR for o in bad)
    assert "image cannot be decoded" in bad[0].message
