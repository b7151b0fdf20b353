"""Builders of protocol messages for the broker's socket-free tests."""

from __future__ import annotations

import numpy as np

from msq.broker.core import BrokerCore, Endpoint, Outgoing
from msq.broker.settings import BrokerSettings
from msq.proto.batching import BatchPolicy
from msq.proto.codec import from_wire, to_wire
from msq.proto.columns import Outcomes, count_rows, split, stack
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import (
    Instance,
    InstanceOutcome,
    Job,
    MethodSignature,
    Ready,
    Reply,
    Request,
    Result,
    TensorSpec,
)

GATEWAY = b"gateway"
#: Worker identities on the backend.
W1, W2 = b"worker-1", b"worker-2"


def signature(
    name: str = "predict",
    sizes: tuple[int, ...] = (1, 2, 4, 8),
    preferred: int | None = None,
    delay_ms: float = 2.0,
    queue: int = 1000,
) -> MethodSignature:
    """A method taking a float32 [2] input `x` and returning `y`."""
    policy = BatchPolicy(sizes, preferred or sizes[-1], delay_ms, queue)
    return MethodSignature(name, (TensorSpec("x", "float32", (2,)),), (TensorSpec("y"),), policy)


def ready(servable: str = "model", version: int = 1, capacity: int = 2, **kwargs: object) -> Ready:
    return Ready(servable, version, (signature(**kwargs),), capacity)  # type: ignore[arg-type]


def instance(value: float) -> Instance:
    return {"x": to_wire(np.array([value, -value], np.float32))}


def request(
    request_id: int,
    values: list[float] | list[Instance],
    servable: str = "model",
    method: str = "predict",
    version: int = 0,
    timeout_ms: float | None = None,
) -> Request:
    """A request of these instances (or of instances with these x[0]), stacked as a gateway
    stacks them."""
    instances = [v if isinstance(v, dict) else instance(v) for v in values]
    return Request(request_id, servable, method, stack(instances), version, timeout_ms)


def jobs(out: list[Outgoing]) -> list[tuple[bytes, Job]]:
    return [(o.peer, o.message) for o in out if isinstance(o.message, Job)]


def replies(out: list[Outgoing]) -> list[Reply]:
    return [
        o.message for o in out if o.endpoint is Endpoint.FRONTEND and isinstance(o.message, Reply)
    ]


def echo_result(job: Job, fail: frozenset[float] = frozenset()) -> Result:
    """The result a worker computing y = x * 10 gives; instances whose x[0] is in `fail` fail."""
    outcomes: list[InstanceOutcome] = []
    for inst in split(job.columns):
        x = from_wire(inst["x"])
        assert isinstance(x, np.ndarray)
        if float(x[0]) in fail:
            outcomes.append(Failure(ErrorKind.MODEL_ERROR, f"bad value {x[0]}"))
        else:
            outcomes.append({"y": to_wire(x * 10)})
    answer = Outcomes.of(outcomes)
    return Result(job.job_id, answer.columns, answer.failures, compute_ms=1.0)


def reply_outcomes(reply: Reply) -> list[InstanceOutcome]:
    """Every instance's outcome in a reply, in order."""
    count = count_rows(reply.columns) + len(reply.failures)
    return Outcomes(reply.columns, reply.failures, count).rows()


def first_values(reply: Reply) -> list[float | str]:
    """y[0] / 10 of each outcome (the instance's x[0]), or the failure message."""
    values: list[float | str] = []
    for outcome in reply_outcomes(reply):
        if isinstance(outcome, Failure):
            values.append(outcome.message)
        else:
            y = from_wire(outcome["y"])
            assert isinstance(y, np.ndarray)
            values.append(float(y[0]) / 10)
    return values


def job_values(job: Job) -> list[float]:
    return [float(np.asarray(from_wire(inst["x"]))[0]) for inst in split(job.columns)]


def new_core(**settings: object) -> BrokerCore:
    return BrokerCore(BrokerSettings(**settings))  # type: ignore[arg-type]
