"""Unit tests of the gateways' one error table."""

from __future__ import annotations

import grpc

from msq.gateways.core.errors import (
    ERROR_STATUS,
    QUEUE_FULL_TOO_MANY_REQUESTS,
    GatewayError,
    error_status,
)
from msq.proto.errors import ErrorKind, Failure, MSErrorCode


def test_error_statuses() -> None:
    code = grpc.StatusCode
    expected = {
        ErrorKind.INVALID_INPUT: (MSErrorCode.INVALID_INPUTS, code.INVALID_ARGUMENT, 400),
        ErrorKind.NOT_FOUND: (MSErrorCode.SERVABLE_UNAVAILABLE, code.NOT_FOUND, 404),
        ErrorKind.WORKER_UNAVAILABLE: (MSErrorCode.WORKER_UNAVAILABLE, code.UNAVAILABLE, 503),
        ErrorKind.QUEUE_FULL: (MSErrorCode.SYSTEM_ERROR, code.UNAVAILABLE, 503),
        ErrorKind.TIMEOUT: (MSErrorCode.SYSTEM_ERROR, code.DEADLINE_EXCEEDED, 504),
        ErrorKind.MODEL_ERROR: (MSErrorCode.FAILED, code.INTERNAL, 500),
        ErrorKind.INTERNAL: (MSErrorCode.SYSTEM_ERROR, code.INTERNAL, 500),
    }
    table = {kind: (s.ms_code, s.grpc_code, s.http_status) for kind, s in ERROR_STATUS.items()}
    assert table == expected
    assert set(ERROR_STATUS) == set(ErrorKind)
    assert error_status(ErrorKind.QUEUE_FULL, QUEUE_FULL_TOO_MANY_REQUESTS).http_status == 429
    assert error_status(ErrorKind.TIMEOUT, QUEUE_FULL_TOO_MANY_REQUESTS).http_status == 504
    assert error_status(ErrorKind.QUEUE_FULL, QUEUE_FULL_TOO_MANY_REQUESTS).grpc_code is (
        code.RESOURCE_EXHAUSTED
    )
    error = GatewayError.of(Failure(ErrorKind.TIMEOUT, "deadline passed"))
    assert (error.kind, error.message, str(error)) == (ErrorKind.TIMEOUT, *["deadline passed"] * 2)
