"""The broker's I/O loop: a thin synchronous shell around `BrokerCore`.

It polls the frontend (gateways) and backend (workers) ROUTER sockets, decodes messages, feeds
them to the core, and sends what the core returns. Malformed messages are answered when they
name a request and dropped with a log line otherwise; they never stop the loop.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable

import zmq
from zmq.auth.thread import ThreadAuthenticator

from msq.broker.core import BrokerCore, Endpoint, Outgoing
from msq.broker.exposition import broker_metrics, loop_metrics
from msq.metrics import Snapshot
from msq.proto import transport
from msq.proto.curve import GATEWAYS_DOMAIN, WORKERS_DOMAIN, CurveServer, start_authenticator
from msq.proto.messages import (
    Cancel,
    ControllerReady,
    Heartbeat,
    RepositoryAnswer,
    RepositoryCommand,
    Request,
    StatusQuery,
)
from msq.proto.wire import WireError

log = logging.getLogger(__name__)

#: Messages read from one socket before the other gets its turn.
_BATCH = 256
#: Seconds between two publications of the metrics (when they are served).
METRICS_INTERVAL_S = 0.5


class BrokerLoop:
    """Binds the two ROUTER sockets and runs the core until `stop()` is called."""

    def __init__(
        self,
        core: BrokerCore,
        frontend: str = transport.DEFAULT_FRONTEND,
        backend: str = transport.DEFAULT_BACKEND,
        *,
        max_message_bytes: int = transport.DEFAULT_MAX_MESSAGE_BYTES,
        context: zmq.Context | None = None,  # type: ignore[type-arg]
        metrics: Snapshot | None = None,
        curve: CurveServer | None = None,
    ) -> None:
        """`metrics`, when given, receives the core's statistics every `METRICS_INTERVAL_S`,
        published from this loop's thread (the server thread only reads the snapshot).
        With `curve`, both sockets are CURVE servers and a ZAP handler admits only the
        authorized worker keys on the backend and gateway keys on the frontend."""
        self.core = core
        self.metrics = metrics
        #: Messages received and sent, by socket ("frontend", "backend").
        self.received = {"frontend": 0, "backend": 0}
        self.sent = {"frontend": 0, "backend": 0}
        self._next_publish = 0.0
        self.context = context or zmq.Context.instance()
        self._authenticator: ThreadAuthenticator | None = None
        if curve is not None:
            self._authenticator, _ = start_authenticator(self.context, curve)
        sockets: list[zmq.Socket] = []  # type: ignore[type-arg]
        try:
            for endpoint, domain in ((frontend, GATEWAYS_DOMAIN), (backend, WORKERS_DOMAIN)):
                sockets.append(
                    transport.router(
                        self.context, endpoint, max_message_bytes, curve=curve, zap_domain=domain
                    )
                )
        except BaseException:
            for sock in sockets:
                sock.close(linger=0)
            if self._authenticator is not None:
                self._authenticator.stop()
            raise
        self.frontend, self.backend = sockets
        self._stopping = threading.Event()

    @property
    def endpoints(self) -> tuple[str, str]:
        """The bound (frontend, backend) endpoints, with real port numbers."""
        return (
            self.frontend.getsockopt_string(zmq.LAST_ENDPOINT),
            self.backend.getsockopt_string(zmq.LAST_ENDPOINT),
        )

    def stop(self) -> None:
        """Ask the loop to return (thread- and signal-safe)."""
        self._stopping.set()

    def run(self) -> None:
        """Serve until `stop()`; then answer every pending request and close the sockets."""
        poller = zmq.Poller()
        poller.register(self.frontend, zmq.POLLIN)
        poller.register(self.backend, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                wait_ms = max(0.0, self.core.next_wakeup(now) - now) * 1000.0
                events = dict(poller.poll(math.ceil(min(wait_ms, 100.0))))
                if self.frontend in events:
                    self._drain(self.frontend, self._on_frontend, "frontend")
                if self.backend in events:
                    self._drain(self.backend, self._on_backend, "backend")
                now = time.monotonic()
                self._send(self.core.tick(now))
                if self.metrics is not None and now >= self._next_publish:
                    self._next_publish = now + METRICS_INTERVAL_S
                    self.publish_metrics(self.metrics, now)
            self._send(self.core.shutdown())
        finally:
            self.frontend.close(linger=0)
            self.backend.close(linger=0)
            if self._authenticator is not None:
                self._authenticator.stop()

    def publish_metrics(self, metrics: Snapshot, now: float) -> None:
        """Publish the core's statistics and this loop's counts (call from the loop's thread)."""
        credits: Counter[tuple[str, int]] = Counter()
        for worker in self.core.workers.values():
            credits[(worker.ready.servable, worker.ready.version)] += worker.credits
        status = self.core.status(0, now)
        metrics.publish(
            [*broker_metrics(status), *loop_metrics(dict(self.received), dict(self.sent), credits)]
        )

    def _drain(
        self,
        sock: zmq.Socket,  # type: ignore[type-arg]
        handle: Callable[[bytes, list[zmq.Frame]], None],
        name: str,
    ) -> None:
        """Handle the messages waiting on `sock` (which the poller found readable), up to
        `_BATCH`; asking the socket whether more wait is cheaper than a failed receive."""
        for _ in range(_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.received[name] += 1
            if len(frames) < 2:
                log.warning("dropping a message with no body")
            else:
                try:
                    handle(frames[0].bytes, frames[1:])
                except Exception:  # a bug must cost one message, never the broker
                    log.exception("failed to handle a message from %s", frames[0].bytes.hex())
            if not transport.readable(sock):
                return

    def _on_frontend(self, client: bytes, frames: list[zmq.Frame]) -> None:
        now = time.monotonic()
        try:
            message = transport.message_of(frames)
        except WireError as exc:
            if exc.request_id is None:
                log.warning("dropping malformed message from gateway %s: %s", client.hex(), exc)
            else:
                self._send(self.core.on_malformed_request(client, exc.request_id, str(exc), now))
            return
        match message:
            case Request():
                self._send(self.core.on_request(client, message, now))
            case Cancel():
                self._send(self.core.on_cancel(client, message, now))
            case StatusQuery():
                self._send(self.core.on_status_query(client, message, now))
            case ControllerReady() | RepositoryCommand() | RepositoryAnswer():
                self._send(self.core.on_control(client, message, now))
            case Heartbeat():
                self._send(self.core.on_gateway_heartbeat(client, now))
            case _:
                log.warning("gateway %s sent unexpected %s", client.hex(), type(message).__name__)

    def _on_backend(self, worker: bytes, frames: list[zmq.Frame]) -> None:
        try:
            message = transport.message_of(frames)
        except WireError as exc:
            log.warning("dropping malformed message from worker %s: %s", worker.hex(), exc)
            return
        self._send(self.core.on_worker_message(worker, message, time.monotonic()))

    def _send(self, outgoing: list[Outgoing]) -> None:
        for item in outgoing:
            frontend = item.endpoint is Endpoint.FRONTEND
            sock = self.frontend if frontend else self.backend
            try:
                sock.send_multipart(transport.frames_of(item.message, peer=item.peer), copy=False)
                self.sent["frontend" if frontend else "backend"] += 1
            except zmq.ZMQError as exc:
                if exc.errno not in (zmq.EHOSTUNREACH, zmq.EAGAIN):
                    raise
                if frontend:
                    log.warning("gateway %s unreachable (%s); reply dropped", item.peer.hex(), exc)
                else:
                    reason = f"worker unreachable: {exc.strerror}"
                    self._send(self.core.on_worker_lost(item.peer, time.monotonic(), reason))
