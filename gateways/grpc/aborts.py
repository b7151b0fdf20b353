"""Running a gRPC call's work: a `GatewayError` ends the call with its kind's status code."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc

from msq.gateways.core.errors import GatewayError

T = TypeVar("T")


async def succeeds(check: Awaitable[object]) -> bool:
    """Whether `check` passes (a `GatewayError` says it does not)."""
    try:
        await check
    except GatewayError:
        return False
    return True


async def answer(context: grpc.aio.ServicerContext, call: Awaitable[T]) -> T:
    """The result of `call`; a `GatewayError` ends the RPC with its status code instead."""
    try:
        return await call
    except GatewayError as exc:
        await context.abort(exc.status.grpc_code, exc.message)
        raise  # context.abort raised already; this tells the type checker
