"""The broker's catalog of servables as a gateway process sees it: one cached `Status`."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from msq.gateways.core.errors import GatewayError
from msq.proto.errors import ErrorKind
from msq.proto.messages import Status

T = TypeVar("T")


class Catalog:
    """The broker's status, cached for `ttl_s` (one query at a time).

    `query` is `BrokerLink.status` (or any coroutine function answering a `Status`, or None
    when the broker does not answer). A lookup that finds nothing in the cache refreshes it,
    at most once every `min_refresh_s`, so a worker that just registered is found at once.
    """

    def __init__(
        self,
        query: Callable[[], Awaitable[Status | None]],
        *,
        ttl_s: float = 1.0,
        min_refresh_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._query = query
        self._ttl_s = ttl_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._status: Status | None = None
        self._fetched_at = -math.inf
        self._pending: asyncio.Future[Status | None] | None = None

    async def status(self, *, max_age_s: float | None = None) -> Status | None:
        """The broker's status, at most `max_age_s` old (default: the cache's ttl)."""
        max_age = self._ttl_s if max_age_s is None else max_age_s
        if self._clock() - self._fetched_at < max_age:
            return self._status
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._fetch())
        return await asyncio.shield(self._pending)

    async def _fetch(self) -> Status | None:
        try:
            status = await self._query()
        finally:
            self._pending = None
        self._status, self._fetched_at = status, self._clock()
        return status

    async def require(self, *, max_age_s: float | None = None) -> Status:
        """Like `status`; raise `GatewayError` (WORKER_UNAVAILABLE) when the broker is silent."""
        status = await self.status(max_age_s=max_age_s)
        if status is None:
            raise GatewayError(ErrorKind.WORKER_UNAVAILABLE, "the broker does not answer")
        return status

    async def find(self, lookup: Callable[[Status], T]) -> T:
        """`lookup` applied to the status; when it raises NOT_FOUND, once more on a status
        refreshed (at most `min_refresh_s` old)."""
        try:
            return lookup(await self.require())
        except GatewayError as exc:
            if exc.kind is not ErrorKind.NOT_FOUND:
                raise
        return lookup(await self.require(max_age_s=self._min_refresh_s))
