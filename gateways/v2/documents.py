"""The V2 documents about the server and its models: server metadata, model metadata, the
Triton-style model configuration and statistics (plain dicts shaped like the protocol's JSON;
the gRPC front-end parses them into its messages)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msq
from msq.gateways.v2.datatypes import config_datatype, v2_datatype
from msq.gateways.v2.models import V2Model, model_name, parse_version, resolve
from msq.proto.messages import Status, TensorSpec

PLATFORM = "mindspore_mindir"
SERVER_NAME = "msq"


def server_metadata(extensions: Sequence[str]) -> dict[str, Any]:
    """The V2 server metadata, listing the protocol `extensions` the front-end serves."""
    return {"name": SERVER_NAME, "version": msq.__version__, "extensions": list(extensions)}


def model_metadata(model: V2Model) -> dict[str, Any]:
    """The V2 model metadata."""

    def tensor(spec: TensorSpec) -> dict[str, Any]:
        return {"name": spec.name, "datatype": v2_datatype(spec.dtype), "shape": model.shape(spec)}

    return {
        "name": model.name,
        "versions": [str(version) for version in model.versions],
        "platform": PLATFORM,
        "inputs": [tensor(spec) for spec in model.method.inputs],
        "outputs": [tensor(spec) for spec in model.method.outputs],
    }


def model_config(model: V2Model) -> dict[str, Any]:
    """The Triton-style model configuration (what perf_analyzer reads)."""

    def tensor(spec: TensorSpec) -> dict[str, Any]:
        dims = [-1] if spec.shape is None else list(spec.shape)
        return {"name": spec.name, "data_type": config_datatype(spec.dtype), "dims": dims}

    config: dict[str, Any] = {
        "name": model.name,
        "platform": PLATFORM,
        "backend": "msq",
        "max_batch_size": model.max_batch_size,
        "input": [tensor(spec) for spec in model.method.inputs],
        "output": [tensor(spec) for spec in model.method.outputs],
    }
    if model.max_batch_size:
        policy = model.method.batching
        config["dynamic_batching"] = {
            "preferred_batch_size": [policy.preferred_size],
            "max_queue_delay_microseconds": round(policy.max_queue_delay_ms * 1000),
        }
    return config


def _duration(count: object, milliseconds: object) -> dict[str, int]:
    count = count if isinstance(count, int) else 0
    ms = milliseconds if isinstance(milliseconds, (int, float)) else 0.0
    return {"count": count, "ns": round(ms * 1_000_000)}


def route_statistics(name: str, route: Mapping[str, Any]) -> dict[str, Any]:
    """Triton's `model_stats` entry for one broker statistics route (see `msq.broker.stats`).

    Counts are per instance (Triton's inference) and per job (Triton's execution); msq does not
    time whole requests, so `success`/`fail` carry counts with ns 0.
    """
    queue = route.get("queue_delay_ms") or {}
    compute = route.get("compute_ms") or {}
    job_sizes = route.get("job_sizes") or {}
    return {
        "name": name,
        "version": str(route.get("version", 0)),
        "last_inference": 0,
        "inference_count": int(route.get("instances_succeeded", 0)),
        "execution_count": int(route.get("executions", 0)),
        "inference_stats": {
            "success": _duration(route.get("instances_succeeded", 0), 0),
            "fail": _duration(route.get("instances_failed", 0), 0),
            "queue": _duration(queue.get("count", 0), queue.get("sum", 0.0)),
            "compute_input": _duration(0, 0),
            "compute_infer": _duration(compute.get("count", 0), compute.get("sum", 0.0)),
            "compute_output": _duration(0, 0),
        },
        "batch_stats": [
            {"batch_size": int(size), "compute_infer": _duration(count, 0)}
            for size, count in sorted(job_sizes.items(), key=lambda item: int(item[0]))
        ],
    }


def statistics(status: Status, name: str = "", version: str = "") -> list[dict[str, Any]]:
    """Triton's `model_stats` list: every route of model `name` (all models when empty)."""
    routes = status.stats.get("routes")
    routes = routes if isinstance(routes, list) else []
    if name:
        model = resolve(status, name, version)
        wanted = parse_version(version)
        return [
            route_statistics(model.name, route)
            for route in routes
            if route.get("servable") == model.servable
            and route.get("method") == model.method.name
            and wanted in (0, route.get("version"))
        ]
    return [
        route_statistics(model_name(route.get("servable", ""), route.get("method", "")), route)
        for route in routes
    ]
