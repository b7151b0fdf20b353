"""The one error table of the gateways: each `ErrorKind` as MindSpore Serving, gRPC and HTTP
report it, and the exception a gateway raises to fail a request with a kind.

MODEL_ERROR (the servable's own code or model failed on an instance) is INTERNAL/500, as
Triton answers a failed model execution; TIMEOUT (the request's deadline passed) is
DEADLINE_EXCEEDED/504. Queue full answers "try again" (UNAVAILABLE/503, as Triton and TF Serving
do) unless a gateway picks `QUEUE_FULL_TOO_MANY_REQUESTS` (Ray Serve's 429).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from msq.proto.errors import ErrorKind, Failure, MSErrorCode


@dataclass(frozen=True, slots=True)
class ErrorStatus:
    """How one kind of failure is reported on each protocol."""

    ms_code: MSErrorCode
    grpc_code: grpc.StatusCode
    http_status: int


#: Queue full as Triton and TF Serving answer it: "try again" (the default policy).
QUEUE_FULL_UNAVAILABLE = ErrorStatus(MSErrorCode.SYSTEM_ERROR, grpc.StatusCode.UNAVAILABLE, 503)
#: Queue full as rate limiters answer it (Ray Serve's 429); pass it to `error_status`.
QUEUE_FULL_TOO_MANY_REQUESTS = ErrorStatus(
    MSErrorCode.SYSTEM_ERROR, grpc.StatusCode.RESOURCE_EXHAUSTED, 429
)

#: One status per failure kind, on every protocol.
ERROR_STATUS: Mapping[ErrorKind, ErrorStatus] = {
    ErrorKind.INVALID_INPUT: ErrorStatus(
        MSErrorCode.INVALID_INPUTS, grpc.StatusCode.INVALID_ARGUMENT, 400
    ),
    ErrorKind.NOT_FOUND: ErrorStatus(
        MSErrorCode.SERVABLE_UNAVAILABLE, grpc.StatusCode.NOT_FOUND, 404
    ),
    ErrorKind.WORKER_UNAVAILABLE: ErrorStatus(
        MSErrorCode.WORKER_UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, 503
    ),
    ErrorKind.QUEUE_FULL: QUEUE_FULL_UNAVAILABLE,
    ErrorKind.TIMEOUT: ErrorStatus(
        MSErrorCode.SYSTEM_ERROR, grpc.StatusCode.DEADLINE_EXCEEDED, 504
    ),
    ErrorKind.MODEL_ERROR: ErrorStatus(MSErrorCode.FAILED, grpc.StatusCode.INTERNAL, 500),
    ErrorKind.INTERNAL: ErrorStatus(MSErrorCode.SYSTEM_ERROR, grpc.StatusCode.INTERNAL, 500),
}


def error_status(kind: ErrorKind, queue_full: ErrorStatus = QUEUE_FULL_UNAVAILABLE) -> ErrorStatus:
    """The status of a failure kind on every protocol, with the chosen queue-full policy."""
    return queue_full if kind is ErrorKind.QUEUE_FULL else ERROR_STATUS[kind]


class GatewayError(Exception):
    """A request that fails as a whole: why (`kind`) and a message for the caller.

    Each front-end answers it with its kind's status (`status`) and the message.
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def of(cls, failure: Failure) -> GatewayError:
        """The error for a failure reported by the broker."""
        return cls(failure.kind, failure.message)

    @property
    def status(self) -> ErrorStatus:
        """The default status of this error on every protocol."""
        return error_status(self.kind)
