"""Calling a broker from synchronous tests through the gateways' async link."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from msq.gateways.core.link import BrokerLink
from msq.proto.codec import Value, from_wire, to_wire
from msq.proto.columns import Outcomes, count_rows, stack
from msq.proto.errors import Failure
from msq.proto.messages import InstanceOutcome, Reply

T = TypeVar("T")


def with_link(frontend: str, use: Callable[[BrokerLink], Awaitable[T]]) -> T:
    """Run `use(link)` on a fresh event loop with a link to `frontend`."""

    async def main() -> T:
        link = BrokerLink(frontend)
        try:
            return await use(link)
        finally:
            link.close()

    return asyncio.run(main())


def infer(
    frontend: str,
    servable: str,
    method: str,
    instances: list[Mapping[str, object]],
    **options: object,
) -> Reply:
    """One request through a fresh link (the instances stacked as the gateways do)."""
    wire = stack([{name: to_wire(value) for name, value in inst.items()} for inst in instances])
    return with_link(
        frontend,
        lambda link: link.infer(servable, method, wire, **options),  # type: ignore[arg-type]
    )


def instance_outcomes(reply: Reply) -> list[InstanceOutcome]:
    """The outcome of every instance of a reply that did not fail as a whole, in order."""
    assert reply.error is None, reply.error
    count = count_rows(reply.columns) + len(reply.failures)
    return Outcomes(reply.columns, reply.failures, count).rows()


def values(reply: Reply) -> list[dict[str, Value] | Failure]:
    """The reply's outcomes as Python values (failures unchanged)."""
    return [
        o if isinstance(o, Failure) else {k: from_wire(t) for k, t in o.items()}
        for o in instance_outcomes(reply)
    ]
