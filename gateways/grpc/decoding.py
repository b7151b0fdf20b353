"""Requests that are not valid protobuf end with INVALID_ARGUMENT and at most a log line a minute.

grpcio runs a method's request deserializer before its handler, and an exception there ends
the call with UNKNOWN and a logged traceback, once per call. `unary_method` builds a method's
handler whose deserializer returns an `Undecodable` instead of raising; the handler then ends
the call with INVALID_ARGUMENT "request is not a valid <Message>: <reason>" (counted by the
gateway's metrics like any other status) and logs it at most once per `LOG_INTERVAL_S` per
method, through `msq.process.LogThrottle`. On a client-streaming method (`stream_method`) an
undecodable message reaches the handler as an `Undecodable`, which answers it alone (the stream
goes on) and calls `report`.
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


def report(method_name: str, request: Undecodable) -> None:
    """Log an undecodable request to `method_name` (at most a line per `LOG_INTERVAL_S`)."""
    _throttle.log(logging.WARNING, method_name, "%s: %s", method_name, request.message)


def full_method_name(method: MethodDescriptor) -> str:
    """`/package.Service/Method`, as gRPC names a method."""
    return f"/{method.containing_service.full_name}/{method.name}"


def unary_method(
    method: MethodDescriptor,
    behavior: Behavior,
    deserializer: Callable[[bytes], Any],
    serializer: Callable[[Any], bytes],
) -> grpc.RpcMethodHandler:
    """The handler of a unary `method`: undecodable requests get INVALID_ARGUMENT."""
    full_name = full_method_name(method)

    async def checked(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, Undecodable):
            report(full_name, request)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return await behavior(request, context)

    return grpc.unary_unary_rpc_method_handler(
        checked,
        request_deserializer=tolerant(deserializer, method.input_type.name),
        response_serializer=serializer,
    )


def stream_method(
    method: MethodDescriptor,
    behavior: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any],
    deserializer: Callable[[bytes], Any],
    serializer: Callable[[Any], bytes],
) -> grpc.RpcMethodHandler:
    """The handler of a bidirectional streaming `method`: each undecodable message arrives in
    the request stream as an `Undecodable`, for `behavior` to answer."""
    return grpc.stream_stream_rpc_method_handler(
        behavior,
        request_deserializer=tolerant(deserializer, method.input_type.name),
        response_serializer=serializer,
    )
