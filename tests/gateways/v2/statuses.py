"""Servables as the broker reports them, shared by the V2 unit tests."""

from __future__ import annotations

from msq.proto.messages import BatchPolicy, MethodSignature, ServableInfo, Status, TensorSpec

ADD_INPUTS = (TensorSpec("x1", "float32", (2, 2)), TensorSpec("x2", "float32", (2, 2)))
ADD_OUTPUTS = (TensorSpec("y", "float32", (2, 2)),)
ADD_COMMON = MethodSignature("add_common", ADD_INPUTS, ADD_OUTPUTS)
ADD_CAST = MethodSignature("add_cast", ADD_INPUTS, ADD_OUTPUTS)
CLASSIFY = MethodSignature(
    "classify",
    (TensorSpec("image", "bytes", ()),),
    (TensorSpec("label", "int64", ()), TensorSpec("scores", "float32", (-1,)), TensorSpec("x")),
    BatchPolicy(sizes=(1, 2, 4, 8), preferred_size=8, max_queue_delay_ms=2.5),
)
ROUTE = {
    "servable": "digits",
    "version": 2,
    "method": "classify",
    "requests": 3,
    "instances": 10,
    "executions": 4,
    "instances_succeeded": 9,
    "instances_failed": 1,
    "failures": {"invalid_input": 1},
    "job_sizes": {"4": 2, "1": 1, "2": 1},
    "queue_delay_ms": {"sum": 1.5, "count": 10, "buckets": [[1.0, 5], [5.0, 10]]},
    "compute_ms": {"sum": 12.25, "count": 4},
    "queued": 0,
    "in_flight": 0,
}


def make_status(stats: dict[str, object] | None = None) -> Status:
    return Status(
        request_id=1,
        servables=[
            ServableInfo("add", 1, (ADD_COMMON, ADD_CAST), 1),
            ServableInfo("digits", 1, (CLASSIFY,), 0),
            ServableInfo("digits", 2, (CLASSIFY,), 2),
        ],
        stats=stats if stats is not None else {"uptime_s": 1.0, "rejected": {}, "routes": [ROUTE]},
    )
