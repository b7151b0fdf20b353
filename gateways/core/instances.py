"""MindSpore Serving's instance lists over the columnar link, for both of its gateways.

MindSpore Serving's gRPC `Predict` and REST `POST /model/...` carry a request as a list of
instances, some of which may already have failed to decode. `infer_instances` stacks the good
ones once (`msq.proto.columns.stack`: one copy per input per run of same-layout instances),
sends them as one request, and gives every instance its outcome back as a row of `Outcomes`:
its decoding failure, the whole request's failure, or its row of the reply. `infer_columns`
does the same for instances a gateway read straight into columns. The reply's output columns
are split only by each protocol's encoder.
"""

from __future__ import annotations

from collections.abc import Sequence

from msq.gateways.core.link import BrokerLink
from msq.proto.columns import Outcomes, stack
from msq.proto.deadline import Deadline
from msq.proto.errors import Failure
from msq.proto.messages import Columns, InstanceOutcome, Reply, RowFailure


async def infer_instances(
    link: BrokerLink,
    servable: str,
    method: str,
    decoded: Sequence[InstanceOutcome],
    *,
    version: int,
    deadline: Deadline,
    rid: str,
) -> Outcomes:
    """Run `method` of `servable` on the decoded instances (failures stay as they are; none
    is sent when all failed) and return the outcomes of all of them, one row each, in order
    (the encoders split the output columns)."""
    valid = [outcome for outcome in decoded if not isinstance(outcome, Failure)]
    reply = None
    if valid:
        reply = await link.infer(
            servable, method, stack(valid), version=version, deadline=deadline, rid=rid
        )
    return merge_outcomes(decoded, reply)


async def infer_columns(
    link: BrokerLink,
    servable: str,
    method: str,
    columns: Columns,
    *,
    version: int,
    deadline: Deadline,
    rid: str,
) -> Outcomes:
    """Run `method` of `servable` on instances already stacked and checked (one row each)."""
    reply = await link.infer(
        servable, method, [columns], version=version, deadline=deadline, rid=rid
    )
    return reply_outcomes(reply, columns.count)


def reply_outcomes(reply: Reply, count: int) -> Outcomes:
    """`reply` to a request of `count` instances as their outcomes."""
    if reply.error is not None:
        return Outcomes.failed(count, reply.error)
    return Outcomes(reply.columns, reply.failures, count)


def merge_outcomes(decoded: Sequence[InstanceOutcome], reply: Reply | None) -> Outcomes:
    """Every decoded instance's outcome as a row: its decoding failure, the whole request's
    failure, or its row of `reply` (the answer to the instances that decoded, as
    `BrokerLink.infer` checked it; None when none decoded)."""
    valid = [row for row, outcome in enumerate(decoded) if not isinstance(outcome, Failure)]
    columns: list[Columns] = []
    answered: dict[int, Failure] = {}
    if reply is not None and len(valid) == len(decoded):
        return reply_outcomes(reply, len(decoded))
    if reply is not None and reply.error is not None:
        answered = dict.fromkeys(valid, reply.error)
    elif reply is not None:
        columns = reply.columns
        answered = {valid[failure.row]: failure.failure for failure in reply.failures}
    failures = [
        RowFailure(row, outcome if isinstance(outcome, Failure) else answered[row])
        for row, outcome in enumerate(decoded)
        if isinstance(outcome, Failure) or row in answered
    ]
    return Outcomes(columns, failures, len(decoded))
