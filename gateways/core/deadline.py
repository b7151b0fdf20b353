"""The time a gRPC call may still take, as the broker request's timeout."""

from __future__ import annotations

import grpc

#: A remaining time above this (grpcio reports "infinite" as a huge number) means no deadline.
NO_DEADLINE_S = 1e7


def call_timeout_s(context: grpc.aio.ServicerContext, limit_s: float | None = None) -> float | None:
    """Seconds left before the caller's deadline, capped by `limit_s`; None when neither is set."""
    remaining: float | None = context.time_remaining()
    if remaining is None or remaining > NO_DEADLINE_S:
        return limit_s
    return remaining if limit_s is None else min(remaining, limit_s)
