"""Unit tests of the V2 service's model lookup, readiness and statistics over a cached catalog
(the broker is a stub; the link is never used)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from msq.gateways.core.catalog import Catalog
from msq.gateways.core.errors import GatewayError
from msq.gateways.core.link import BrokerLink
from msq.gateways.v2.service import V2Service
from msq.proto.errors import ErrorKind
from msq.proto.messages import Status
from tests.gateways.v2.statuses import make_status


def stub_query(status: Status | None) -> Callable[[], Awaitable[Status | None]]:
    async def query() -> Status | None:
        return status

    return query


def with_service(status: Status | None, use: Callable[[V2Service], Awaitable[None]]) -> None:
    """Run `use` on a service whose broker answers `status` (None: does not answer)."""

    async def scenario() -> None:
        link = BrokerLink("inproc://msq-test-nowhere")  # never sends: nothing here infers
        try:
            await use(V2Service(link, Catalog(stub_query(status))))
        finally:
            link.close()

    asyncio.run(scenario())


async def error_of(call: Awaitable[object]) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await call
    return info.value


def test_models_and_readiness() -> None:
    async def use(v2: V2Service) -> None:
        assert (await v2.model("digits")).name == "digits.classify"
        await v2.check_server_ready()
        assert (await v2.check_model_ready("add.add_common")).workers == 1
        unserved = await error_of(v2.check_model_ready("digits.classify", "1"))
        assert (unserved.kind, unserved.message) == (
            ErrorKind.WORKER_UNAVAILABLE,
            "model 'digits.classify' is not ready: no worker serves it",
        )
        assert (await error_of(v2.check_model_ready("add.nope"))).kind is ErrorKind.NOT_FOUND
        assert len(await v2.statistics()) == 1

    with_service(make_status(), use)


def test_not_ready_without_workers_or_broker() -> None:
    async def idle(v2: V2Service) -> None:
        error = await error_of(v2.check_server_ready())
        assert (error.kind, error.message) == (
            ErrorKind.WORKER_UNAVAILABLE,
            "not ready: no worker serves any model yet",
        )

    async def silent(v2: V2Service) -> None:
        error = await error_of(v2.check_server_ready())
        assert error.message == "not ready: the broker does not answer"
        assert (await error_of(v2.model("add"))).kind is ErrorKind.WORKER_UNAVAILABLE

    with_service(Status(1, [], {}), idle)
    with_service(None, silent)
