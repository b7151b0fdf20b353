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

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        behavior = handler.unary_unary

        async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                reply = await behavior(request, context)
                failed = False
                return reply
            finally:
                code = context.code()
                name = code.name if isinstance(code, grpc.StatusCode) else None
                self.requests.labels(method, name or ("UNKNOWN" if failed else "OK")).inc()
                self.latency.labels(method).observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
