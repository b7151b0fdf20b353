"""Unit tests of the V2 documents: metadata, config, statistics (no sockets)."""

from __future__ import annotations

import pytest

from msq.gateways.core.errors import GatewayError
from msq.gateways.v2.datatypes import ANY_DATATYPE
from msq.gateways.v2.documents import model_config, model_metadata, statistics
from msq.gateways.v2.models import resolve
from tests.gateways.v2.statuses import make_status


def test_metadata_of_non_batching_and_batching_methods() -> None:
    status = make_status()
    assert model_metadata(resolve(status, "add.add_common")) == {
        "name": "add.add_common",
        "versions": ["1"],
        "platform": "mindspore_mindir",
        "inputs": [
            {"name": "x1", "datatype": "FP32", "shape": [2, 2]},
            {"name": "x2", "datatype": "FP32", "shape": [2, 2]},
        ],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [2, 2]}],
    }
    assert model_metadata(resolve(status, "digits")) == {
        "name": "digits.classify",
        "versions": ["1", "2"],
        "platform": "mindspore_mindir",
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "scores", "datatype": "FP32", "shape": [-1, -1]},
            {"name": "x", "datatype": ANY_DATATYPE, "shape": [-1, -1]},
        ],
    }


def test_config_of_non_batching_and_batching_methods() -> None:
    status = make_status()
    assert model_config(resolve(status, "add.add_cast")) == {
        "name": "add.add_cast",
        "platform": "mindspore_mindir",
        "backend": "msq",
        "max_batch_size": 0,
        "input": [
            {"name": "x1", "data_type": "TYPE_FP32", "dims": [2, 2]},
            {"name": "x2", "data_type": "TYPE_FP32", "dims": [2, 2]},
        ],
        "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [2, 2]}],
    }
    config = model_config(resolve(status, "digits"))
    assert config["max_batch_size"] == 8
    assert config["input"] == [{"name": "image", "data_type": "TYPE_STRING", "dims": []}]
    assert config["output"][2] == {"name": "x", "data_type": "TYPE_INVALID", "dims": [-1]}
    assert config["dynamic_batching"] == {
        "preferred_batch_size": [8],
        "max_queue_delay_microseconds": 2500,
    }


def test_statistics_from_broker_routes() -> None:
    expected = {
        "name": "digits.classify",
        "version": "2",
        "last_inference": 0,
        "inference_count": 9,
        "execution_count": 4,
        "inference_stats": {
            "success": {"count": 9, "ns": 0},
            "fail": {"count": 1, "ns": 0},
            "queue": {"count": 10, "ns": 1_500_000},
            "compute_input": {"count": 0, "ns": 0},
            "compute_infer": {"count": 4, "ns": 12_250_000},
            "compute_output": {"count": 0, "ns": 0},
        },
        "batch_stats": [
            {"batch_size": 1, "compute_infer": {"count": 1, "ns": 0}},
            {"batch_size": 2, "compute_infer": {"count": 1, "ns": 0}},
            {"batch_size": 4, "compute_infer": {"count": 2, "ns": 0}},
        ],
    }
    status = make_status()
    assert statistics(status) == [expected]
    assert statistics(status, "digits") == [expected]
    assert statistics(status, "digits.classify", "2") == [expected]
    assert statistics(status, "digits.classify", "1") == []
    assert statistics(status, "add.add_common") == []
    with pytest.raises(GatewayError):
        statistics(status, "nope")


def test_statistics_tolerate_missing_fields() -> None:
    status = make_status({"routes": [{"servable": "add", "version": 1, "method": "add_cast"}]})
    (entry,) = statistics(status, "add.add_cast")
    assert entry["inference_count"] == 0
    assert entry["inference_stats"]["queue"] == {"count": 0, "ns": 0}
    assert entry["batch_stats"] == []
    assert statistics(make_status({})) == []
