"""Unit tests of the cached broker catalog (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from msq.gateways.core.catalog import Catalog
from msq.gateways.core.errors import GatewayError
from msq.proto.errors import ErrorKind
from msq.proto.messages import Status
from tests.gateways.v2.statuses import make_status


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingBroker:
    """Answers status queries with `status` (None: no answer), counting them."""

    def __init__(self, status: Status | None) -> None:
        self.status = status
        self.queries = 0

    async def query(self) -> Status | None:
        self.queries += 1
        await asyncio.sleep(0)
        return self.status


def servable_named(name: str) -> Callable[[Status], str]:
    """A lookup finding servable `name` (NOT_FOUND without it)."""

    def lookup(status: Status) -> str:
        if all(info.servable != name for info in status.servables):
            raise GatewayError(ErrorKind.NOT_FOUND, f"no {name}")
        return name

    return lookup


def test_catalog_caches_status_and_shares_one_query() -> None:
    broker, clock = CountingBroker(make_status()), FakeClock()
    catalog = Catalog(broker.query, ttl_s=1.0, clock=clock)

    async def scenario() -> None:
        found = await asyncio.gather(*(catalog.find(servable_named("add")) for _ in range(5)))
        assert found == ["add"] * 5
        assert broker.queries == 1
        clock.now += 0.5
        assert await catalog.status() is broker.status
        assert broker.queries == 1
        clock.now += 0.6
        assert await catalog.require() is broker.status
        assert broker.queries == 2
        await catalog.require(max_age_s=0.0)  # fresh on demand
        assert broker.queries == 3

    asyncio.run(scenario())


def test_catalog_refreshes_on_not_found_at_most_every_min_refresh() -> None:
    broker, clock = CountingBroker(Status(1, [], {})), FakeClock()
    catalog = Catalog(broker.query, ttl_s=10.0, min_refresh_s=0.1, clock=clock)

    async def scenario() -> None:
        assert await catalog.status() == Status(1, [], {})
        assert broker.queries == 1
        broker.status = make_status()  # a worker registered meanwhile
        with pytest.raises(GatewayError) as info:
            await catalog.find(servable_named("add"))  # the cache is too fresh to refresh
        assert info.value.kind is ErrorKind.NOT_FOUND
        assert broker.queries == 1
        clock.now += 0.2
        assert await catalog.find(servable_named("add")) == "add"
        assert broker.queries == 2
        clock.now += 0.2
        with pytest.raises(GatewayError):
            await catalog.find(servable_named("nope"))
        assert broker.queries == 3

    asyncio.run(scenario())


def test_other_errors_of_a_lookup_do_not_refresh() -> None:
    broker, clock = CountingBroker(make_status()), FakeClock()
    catalog = Catalog(broker.query, min_refresh_s=0.0, clock=clock)

    def invalid(status: Status) -> None:
        raise GatewayError(ErrorKind.INVALID_INPUT, "bad name")

    async def scenario() -> None:
        with pytest.raises(GatewayError) as info:
            await catalog.find(invalid)
        assert info.value.kind is ErrorKind.INVALID_INPUT
        assert broker.queries == 1

    asyncio.run(scenario())


def test_catalog_without_broker() -> None:
    catalog = Catalog(CountingBroker(None).query)

    async def scenario() -> None:
        assert await catalog.status() is None
        with pytest.raises(GatewayError) as info:
            await catalog.find(servable_named("add"))
        assert info.value.kind is ErrorKind.WORKER_UNAVAILABLE
        assert info.value.message == "the broker does not answer"
        assert info.value.status.http_status == 503

    asyncio.run(scenario())
