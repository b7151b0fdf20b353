"""The gRPC gateway's request metrics: a server interceptor counting and timing unary calls.

`msq_grpc_requests_total{method,code}` and `msq_grpc_request_duration_seconds{method}`, where
`method` is the full RPC name ("/inference.GRPCInferenceService/ModelInfer") and `code` the
gRPC status name ("OK", "INVALID_ARGUMENT", ...). Streaming calls (health `Watch`,
reflection) are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from msq.metrics import LATENCY_BUCKETS_S

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts every unary call by method and status code, and times it."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = Counter(
            "msq_grpc_requests",
            "gRPC calls answered by the gRPC gateway",
            ["method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "msq_grpc_request_duration_seconds",
            "Time to answer a gRPC call",
            ["method"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        wrapped = self._wrapped.get(method)
        if wrapped is None:  # once per method: the gateway's handlers never change
            handler = await continuation(handler_call_details)
            if handler is None or handler.unary_unary is None:
                return handler
            wrapped = self._wrapped[method] = self._timed(method, handler)
        return wrapped

    def _timed(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        behavior = handler.unary_unary
        latency = self.latency.labels(method)
        succeeded = self.requests.labels(method, "OK")

        async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                reply = await behavior(request, context)
                failed = False
                return reply
            finally:
                latency.observe(time.perf_counter() - started)
                code = context.code()
                if not failed and code in (None, grpc.StatusCode.OK):
                    succeeded.inc()
                else:
                    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
                    self.requests.labels(method, name).inc()

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
