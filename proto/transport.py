"""The one place where msq's ZeroMQ sockets are made and every socket option is set."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar, cast

import zmq
from typing_extensions import Buffer

from msq.proto.curve import CurveClient, CurveServer, report_handshake_failures
from msq.proto.messages import Message
from msq.proto.wire import decode, encode

#: Where the broker listens for gateways (frontend) and workers (backend) by default.
DEFAULT_FRONTEND = "tcp://127.0.0.1:5600"
DEFAULT_BACKEND = "tcp://127.0.0.1:5601"
#: Largest message a broker socket accepts (bytes); larger ones are dropped by libzmq.
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024
#: Frames queued per peer before a send reports EAGAIN (never a silent drop).
HIGH_WATER_MARK = 10000
#: Frames smaller than this are copied into libzmq even when sent with copy=False: a zero-copy
#: send costs a wake-up of pyzmq's garbage-collector thread when libzmq lets go of the buffer
#: (~70 µs of CPU and a GIL hand-off), more than copying up to about this much.
COPY_THRESHOLD_BYTES = 512 * 1024

SocketT = TypeVar("SocketT", bound=zmq.Socket)  # type: ignore[type-arg]


def _common(sock: SocketT, max_message_bytes: int) -> SocketT:
    sock.copy_threshold = COPY_THRESHOLD_BYTES
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
    sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
    # Transport heartbeats find dead hosts and half-open TCP connections.
    sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
    return sock


def router(
    context: zmq.Context,  # type: ignore[type-arg]
    bind: str,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    curve: CurveServer | None = None,
    zap_domain: str = "",
) -> zmq.Socket:  # type: ignore[type-arg]
    """A ROUTER bound to `bind` (an endpoint, or several comma-separated: an ipc:// one for
    this host's processes beside a tcp:// one, say) that raises EHOSTUNREACH instead of
    dropping messages to lost peers, and lets a reconnecting peer take over its identity.

    With `curve` it is a CURVE server whose peers the ZAP handler of `context`
    (`msq.proto.curve.start_authenticator`) admits by the keys authorized in `zap_domain`.
    """
    sock: zmq.Socket = _common(context.socket(zmq.ROUTER), max_message_bytes)  # type: ignore[type-arg]
    if curve is not None:
        if zap_domain not in curve.authorized:
            raise ValueError(f"no keys are authorized in ZAP domain {zap_domain!r}")
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve.keys.secret)
        sock.setsockopt(zmq.ZAP_DOMAIN, zap_domain.encode())
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    sock.setsockopt(zmq.SNDTIMEO, 0)
    try:
        for endpoint in endpoints(bind):
            sock.bind(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def dealer(
    context: zmq.Context,  # type: ignore[type-arg]
    connect: str,
    identity: bytes | None = None,
    *,
    immediate: bool = False,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    curve: CurveClient | None = None,
) -> zmq.Socket:  # type: ignore[type-arg]
    """A DEALER connected to a broker, with a fresh random identity unless one is given.

    With `immediate`, a send while the broker is not connected fails at once (EAGAIN)
    instead of queueing: callers learn that the broker is down (a broker that refuses this
    socket's CURVE key never counts as connected). With `curve`, the connection is encrypted
    and authenticated with that key pair, to a broker holding `curve.server_key`.
    """
    sock: zmq.Socket = _common(context.socket(zmq.DEALER), max_message_bytes)  # type: ignore[type-arg]
    if curve is not None:
        sock.setsockopt(zmq.CURVE_SERVERKEY, curve.server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.keys.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve.keys.secret)
    sock.setsockopt(zmq.IDENTITY, identity or os.urandom(8))
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    sock.setsockopt(zmq.IMMEDIATE, int(immediate))
    if curve is not None:
        report_handshake_failures(sock, connect)
    sock.connect(connect)
    return sock


def readable(sock: zmq.Socket) -> bool:  # type: ignore[type-arg]
    """Whether a message waits on `sock`: cheaper than a receive that fails with `zmq.Again`
    (an exception), and it resets the socket's edge-triggered file descriptor (`zmq.FD`)."""
    return bool(cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


def frames_of(message: Message, *, peer: bytes | None = None) -> list[Buffer]:
    """The frames to send for a message, routed to `peer` when sent on a ROUTER."""
    frames = encode(message)
    return frames if peer is None else [peer, *frames]


def message_of(frames: Sequence[zmq.Frame]) -> Message:
    """Decode frames received with `copy=False`; tensors stay views of the frames."""
    return decode([frame.buffer for frame in frames])


def endpoints(values: str | Sequence[str]) -> list[str]:
    """Broker endpoints from one option value or several (each may be a comma-separated list),
    in order, each once; ValueError for an empty list or a value that is not `scheme://...`."""
    found: list[str] = []
    for value in [values] if isinstance(values, str) else values:
        for item in value.split(","):
            address = item.strip()
            if "://" not in address:
                raise ValueError(
                    f"invalid broker endpoint {address!r}: not a ZeroMQ endpoint (tcp://HOST:PORT)"
                )
            if address not in found:
                found.append(address)
    if not found:
        raise ValueError("no broker endpoint given")
    return found
