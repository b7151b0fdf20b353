"""MindSpore Serving's instance lists over the columnar link, for both of its gateways.

MindSpore Serving's gRPC `Predict` and REST `POST /model/...` carry a request as a list of
instances, some of which may already have failed to decode. `infer_instances` stacks the good
ones once (`msq.proto.columns.stack`: one copy per input per run of same-layout instances),
sends them as one request, and gives every instance its outcome back in order: its decoding
failure, the whole request's failure, or its row of the reply (split here, as views, for the
encoder).
"""

from __future__ import annotations

from collections.abc import Sequence

from msq.gateways.core.link import BrokerLink
from msq.proto.columns import Outcomes, stack
from msq.proto.deadline import Deadline
from msq.proto.errors import Failure
from msq.proto.messages import InstanceOutcome, Reply


async def infer_instances(
    link: BrokerLink,
    servable: str,
    method: str,
    decoded: Sequence[InstanceOutcome],
    *,
    version: int,
    deadline: Deadline,
    rid: str,
) -> list[InstanceOutcome]:
    """Run `method` of `servable` on the decoded instances (failures stay as they are; none
    is sent when all failed) and return every instance's outcome, in order."""
    valid = [outcome for outcome in decoded if not isinstance(outcome, Failure)]
    reply = None
    if valid:
        reply = await link.infer(
            servable, method, stack(valid), version=version, deadline=deadline, rid=rid
        )
    return merge_outcomes(decoded, reply)


def merge_outcomes(
    decoded: Sequence[InstanceOutcome], reply: Reply | None
) -> list[InstanceOutcome]:
    """Every instance's outcome: its decoding failure, else its row of `reply` (the answer to
    the instances that decoded, as `BrokerLink.infer` checked it), in order."""
    failed = [outcome for outcome in decoded if isinstance(outcome, Failure)]
    answers = [] if reply is None else reply_rows(reply, len(decoded) - len(failed))
    if not failed:
        return answers
    rows = iter(answers)
    return [outcome if isinstance(outcome, Failure) else next(rows) for outcome in decoded]


def reply_rows(reply: Reply, count: int) -> list[InstanceOutcome]:
    """The outcome of each of the `count` instances `reply` answers: the whole request's
    failure for each, or its own row (outputs as views of the reply's columns)."""
    if reply.error is not None:
        return [reply.error] * count
    return Outcomes(reply.columns, reply.failures, count).rows()
