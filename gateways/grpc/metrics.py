"""The gRPC gateway's request metrics: msq's services, counted and timed.

`msq_grpc_requests_total{method,code}` and `msq_grpc_request_duration_seconds{method}`, where
`method` is the full RPC name ("/inference.GRPCInferenceService/ModelInfer") and `code` the
gRPC status name ("OK", "INVALID_ARGUMENT", ...). The services' handlers are wrapped where the
server registers them (`RequestMetrics.wrap`), not by an interceptor: grpc.aio awaits every
interceptor on every call, a wrapped handler costs nothing per call but its own timing. On a
stream (`ModelStreamInfer`) each request is counted and timed by itself, with its own code
(`stream_observer`). Health and reflection calls are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from msq.metrics import LATENCY_BUCKETS_S


class RequestMetrics:
    """The gateway's request counters and latency histogram."""

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

    def wrap(self, handler: grpc.GenericRpcHandler) -> grpc.GenericRpcHandler:
        """`handler` with each of its unary methods counted and timed."""
        return _TimedHandler(self, handler)

    def stream_observer(self, method: str) -> Callable[[grpc.StatusCode, float], None]:
        """What counts and times each request on a stream of `method` (a full RPC name):
        called with the request's status and its seconds from arrival to answer."""
        latency = self.latency.labels(method)

        def observe(code: grpc.StatusCode, seconds: float) -> None:
            latency.observe(seconds)
            self.requests.labels(method, code.name).inc()

        return observe

    def timed(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """One unary method's handler, counted and timed."""
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


class _TimedHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A generic handler whose unary methods are wrapped once, on their first call."""

    def __init__(self, metrics: RequestMetrics, inner: grpc.GenericRpcHandler) -> None:
        self._metrics = metrics
        self._inner = inner
        self._wrapped: dict[str, grpc.RpcMethodHandler | None] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if method not in self._wrapped:
            handler = self._inner.service(handler_call_details)
            if handler is not None and handler.unary_unary is not None:
                handler = self._metrics.timed(method, handler)
            self._wrapped[method] = handler
        return self._wrapped[method]
