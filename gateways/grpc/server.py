"""The gRPC gateway: MindSpore Serving's MSService, the V2 GRPCInferenceService, grpc.health.v1
and server reflection on one `grpc.aio` server, all sharing one link to the broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from msq.gateways.core.catalog import Catalog
from msq.gateways.core.link import BrokerLink
from msq.gateways.grpc.metrics import RequestMetrics
from msq.gateways.grpc.ms_service import SERVICE as MS_SERVICE
from msq.gateways.grpc.ms_service import MSService
from msq.gateways.grpc.v2 import SERVICE as V2_SERVICE
from msq.gateways.grpc.v2 import STREAM_METHOD as V2_STREAM_METHOD
from msq.gateways.grpc.v2 import InferenceService
from msq.gateways.v2.service import V2Service
from msq.proto import grpc_predict_v2_pb2, ms_service_pb2
from msq.proto.curve import CurveClient
from msq.proto.deadline import DEFAULT_TIMEOUT_S
from msq.proto.messages import Status
from msq.proto.transport import DEFAULT_FRONTEND

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:5500"
DEFAULT_MAX_MESSAGE_MB = 100
MAX_MESSAGE_MB = 512
#: How often the health service's statuses follow the broker's catalog.
HEALTH_INTERVAL_S = 1.0
#: Time in-flight calls get to finish when the gateway stops.
STOP_GRACE_S = 5.0

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Server certificate and key (PEM files); with `ca`, the CA that signs client certificates,
    which `verify_client` makes mandatory (mutual TLS)."""

    cert: Path
    key: Path
    ca: Path | None = None
    verify_client: bool = False

    def credentials(self) -> grpc.ServerCredentials:
        """The grpcio server credentials."""
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=None if self.ca is None else self.ca.read_bytes(),
            require_client_auth=self.verify_client,
        )


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything `msq-grpc-gateway` is started with."""

    listen: str = DEFAULT_LISTEN
    broker: str = DEFAULT_FRONTEND
    max_message_mb: int = DEFAULT_MAX_MESSAGE_MB
    tls: TLSConfig | None = None
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    #: CURVE keys for the broker connection (None: plaintext).
    curve: CurveClient | None = None
    #: Share the port with other processes (SO_REUSEPORT; `--grpc-workers`), instead of
    #: failing when it is in use.
    reuse_port: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_message_mb <= MAX_MESSAGE_MB:
            raise ValueError(f"the message size limit must be 1 to {MAX_MESSAGE_MB} MB")

    @property
    def max_message_bytes(self) -> int:
        """The largest request or reply, in bytes."""
        return self.max_message_mb * 1024 * 1024


def reflection_pool() -> descriptor_pool.DescriptorPool:
    """A pool with every service's file, for server reflection (msq's stubs use private pools)."""
    pool = descriptor_pool.DescriptorPool()
    for module in (ms_service_pb2, grpc_predict_v2_pb2, health_pb2, reflection_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    return pool


async def follow_health(
    servicer: health.aio.HealthServicer, catalog: Catalog, interval_s: float
) -> None:
    """Keep the health statuses current: overall and per service SERVING while some worker is
    ready, and per servable SERVING while a worker for it is ready."""
    known: set[str] = set()
    while True:
        try:
            status: Status | None = await catalog.status(max_age_s=interval_s / 2)
        except Exception:  # keep reporting; a broken link shows as NOT_SERVING
            log.exception("cannot read the broker's status")
            status = None
        servables = [] if status is None else status.servables
        serving = {info.servable for info in servables if info.workers > 0}
        known |= {info.servable for info in servables}
        overall = SERVING if serving else NOT_SERVING
        await _set_all(servicer, ("", MS_SERVICE, V2_SERVICE), overall)
        for name in known:
            await servicer.set(name, SERVING if name in serving else NOT_SERVING)
        await asyncio.sleep(interval_s)


async def _set_all(servicer: health.aio.HealthServicer, names: Iterable[str], status: int) -> None:
    for name in names:
        await servicer.set(name, status)


class Gateway:
    """A started gRPC gateway; `stop()` ends it."""

    def __init__(self, settings: GatewaySettings, metrics: RequestMetrics | None = None) -> None:
        self.settings = settings
        self.link = BrokerLink(settings.broker, curve=settings.curve)
        self.catalog = Catalog(self.link.status)
        limit = settings.max_message_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # Alone, a port in use is an error, not a shared port.
                ("grpc.so_reuseport", int(settings.reuse_port)),
            ],
        )
        timeout_s = settings.default_timeout_s
        stream = None if metrics is None else metrics.stream_observer(V2_STREAM_METHOD)
        v2 = InferenceService(V2Service(self.link, self.catalog), timeout_s, stream)
        for handler in (MSService(self.link, timeout_s).handler(), v2.handler()):
            counted = handler if metrics is None else metrics.wrap(handler)
            self.server.add_generic_rpc_handlers((counted,))
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        services = (MS_SERVICE, V2_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(services, self.server, pool=reflection_pool())
        if settings.tls is None:
            self.port = self.server.add_insecure_port(settings.listen)
        else:
            self.port = self.server.add_secure_port(settings.listen, settings.tls.credentials())
        self._health_task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """HOST:PORT the gateway listens on (the real port when 0 was asked for), or the
        unix:PATH it was given."""
        if self.settings.listen.startswith("unix:"):
            return self.settings.listen
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Start serving."""
        await _set_all(self.health, ("", MS_SERVICE, V2_SERVICE), NOT_SERVING)
        await self.server.start()
        self._health_task = asyncio.create_task(
            follow_health(self.health, self.catalog, HEALTH_INTERVAL_S)
        )

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Report NOT_SERVING, let in-flight calls finish for `grace_s`, then close."""
        await self.health.enter_graceful_shutdown()
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        await self.server.stop(grace_s)
        self.link.close()
