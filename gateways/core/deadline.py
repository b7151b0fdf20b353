"""The gateways' one deadline rule: the timeouts a client gave, on any protocol, as a `Deadline`.

Every front-end hands `request_deadline` what its protocol carries: the gRPC deadline (what
`grpc.aio.ServicerContext.time_remaining()` reports; grpcio reports "no deadline" as a huge
number), the V2 `timeout` parameter (an integer of microseconds), the `X-MSQ-Timeout-Ms` header
(milliseconds). The smallest wins; without any, the gateway's default
(`msq.proto.deadline.DEFAULT_TIMEOUT_S` unless configured) — see `msq.proto.deadline`. A 0,
negative, non-numeric (or, for V2, non-integer) timeout is a `GatewayError` INVALID_INPUT: HTTP
400, gRPC INVALID_ARGUMENT.
"""

from __future__ import annotations

import time

from msq.gateways.core.errors import GatewayError
from msq.proto.deadline import (
    DEFAULT_TIMEOUT_S,
    Deadline,
    DeadlineError,
    DeadlineSource,
    checked_timeout_s,
    resolve_deadline,
)
from msq.proto.errors import ErrorKind

#: A gRPC time remaining above this (grpcio's "infinite") means the call has no deadline.
NO_DEADLINE_S = 1e7
#: The header giving a request's timeout in milliseconds (REST, any route).
TIMEOUT_HEADER = "X-MSQ-Timeout-Ms"
#: The V2 request parameter giving a request's timeout in microseconds, as messages name it.
TIMEOUT_PARAMETER = "parameter 'timeout' (microseconds)"


def request_deadline(
    default_s: float = DEFAULT_TIMEOUT_S,
    *,
    grpc_remaining_s: float | None = None,
    timeout_parameter: object = None,
    timeout_header: str | None = None,
    now: float | None = None,
) -> Deadline:
    """The deadline of a request from what its client gave (None: not given) and the
    gateway's `default_s`; raise `GatewayError` (INVALID_INPUT) for a bad timeout."""
    now = time.monotonic() if now is None else now
    if grpc_remaining_s is not None and grpc_remaining_s > NO_DEADLINE_S:
        grpc_remaining_s = None
    try:
        given = {
            DeadlineSource.GRPC_DEADLINE: grpc_remaining_s,
            DeadlineSource.TIMEOUT_PARAMETER: (
                None if timeout_parameter is None else _parameter_s(timeout_parameter)
            ),
            DeadlineSource.TIMEOUT_HEADER: (
                None
                if timeout_header is None
                else checked_timeout_s(timeout_header, 1e-3, TIMEOUT_HEADER)
            ),
        }
    except DeadlineError as exc:
        raise GatewayError(ErrorKind.INVALID_INPUT, str(exc)) from None
    return resolve_deadline(given, now, default_s)


def _parameter_s(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DeadlineError(f"{TIMEOUT_PARAMETER} must be a positive integer, not {value!r}")
    return checked_timeout_s(value, 1e-6, TIMEOUT_PARAMETER)
