"""Requests that are not valid protobuf end with INVALID_ARGUMENT and at most a log line a minute.

grpcio runs a method's request deserializer before its handler, and an exception there ends
the call with UNKNOWN and a logged traceback, once per call. `unary_method` builds a method's
handler whose deserializer returns an `Undecodable` instead of raising; the handler then ends
the call with INVALID_ARGUMENT "request is not a valid <Message>: <reason>" (counted by the
gateway's metrics like any other status) and logs it at most once per `LOG_INTERVAL_S` per
method, through `msq.process.LogThrottle`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError

from msq.process import LogThrottle

log = logging.getLogger(__name__)

#: Seconds between two log lines about undecodable requests to one method.
LOG_INTERVAL_S = 60.0

_throttle = LogThrottle(log, LOG_INTERVAL_S)

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What a method's deserializer returns for bytes that are not its request message."""

    message: str


def tolerant(deserializer: Callable[[bytes], Any], message_name: str) -> Callable[[bytes], Any]:
    """`deserializer`, returning an `Undecodable` where it rejects its input."""

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, ValueError) as exc:
            return Undecodable(f"request is not a valid {message_name}: {exc}")

    return deserialize


def unary_method(
    method: MethodDescriptor,
    behavior: Behavior,
    deserializer: Callable[[bytes], Any],
    serializer: Callable[[Any], bytes],
) -> grpc.RpcMethodHandler:
    """The handler of a unary `method`: undecodable requests get INVALID_ARGUMENT."""
    full_name = f"/{method.containing_service.full_name}/{method.name}"

    async def checked(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, Undecodable):
            _throttle.log(logging.WARNING, full_name, "%s: %s", full_name, request.message)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return await behavior(request, context)

    return grpc.unary_unary_rpc_method_handler(
        checked,
        request_deserializer=tolerant(deserializer, method.input_type.name),
        response_serializer=serializer,
    )
