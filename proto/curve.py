"""CURVE keys and ZAP authentication for msq's ZeroMQ sockets.

Keys are pyzmq certificate files (`zmq.auth`): `NAME.key` holds a public key, `NAME.key_secret`
the key pair (mode 0600). The broker is the CURVE server on both its ROUTER sockets; workers,
gateways and `msq status` are CURVE clients with their own key pair and the broker's public key.
The broker's ZAP handler (`start_authenticator`) admits a client only if its public key is in
the authorized-keys directory of the socket's ZAP domain: worker keys on the backend, gateway
keys on the frontend, so a gateway key cannot register as a worker and a worker key cannot
submit requests. `msq.proto.transport` applies these settings to sockets; nothing else does.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import operator
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
#: ZAP domains of the broker's sockets: who may connect to which.
WORKERS_DOMAIN = "msq-workers"
GATEWAYS_DOMAIN = "msq-gateways"
#: Refused keys remembered (each is logged once); more are refused without a log line.
MAX_LOGGED_REFUSALS = 1024


class CurveError(ValueError):
    """A key file or authorized-keys directory that cannot be used."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A CURVE key pair, Z85-encoded; the secret half never appears in a repr."""

    public: bytes
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class CurveClient:
    """What a connecting socket needs: its own key pair and the broker's public key."""

    keys: KeyPair
    server_key: bytes


@dataclass(frozen=True, slots=True)
class CurveServer:
    """What the broker needs: its key pair and the public keys it admits, per ZAP domain."""

    keys: KeyPair
    #: ZAP domain -> the public keys (Z85) authorized in it.
    authorized: dict[str, frozenset[bytes]]


def load_key_pair(path: Path) -> KeyPair:
    """The key pair in a `.key_secret` file."""
    public, secret = _load(path)
    if secret is None:
        raise CurveError(f"{path} holds no secret key (give the {SECRET_SUFFIX} file)")
    return KeyPair(public, secret)


def load_public_key(path: Path) -> bytes:
    """The public key in a `.key` (or `.key_secret`) file."""
    return _load(path)[0]


def _load(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveError(f"no such key file: {path}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveError(f"{path} is not a CURVE key file: {exc}") from None
    if public is None or len(public) != 40:
        raise CurveError(f"{path} is not a CURVE key file: no 40-character public key")
    return public, secret


def load_authorized(directory: Path) -> frozenset[bytes]:
    """The public keys of every `.key` file in `directory` (which must hold at least one)."""
    if not directory.is_dir():
        raise CurveError(f"no such authorized-keys directory: {directory}")
    keys = frozenset(load_public_key(path) for path in sorted(directory.glob(f"*{PUBLIC_SUFFIX}")))
    if not keys:
        raise CurveError(f"no public key ({PUBLIC_SUFFIX} file) in {directory}")
    return keys


def generate_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write `NAME.key` (public, 0644) and `NAME.key_secret` (0600) into `directory`; never
    overwrite. Returns both paths."""
    if not name or "/" in name or name.startswith("."):
        raise CurveError(f"invalid key name {name!r}: use letters, digits, '-' and '_'")
    public = directory / f"{name}{PUBLIC_SUFFIX}"
    secret = directory / f"{name}{SECRET_SUFFIX}"
    for path in (public, secret):
        if path.exists():
            raise CurveError(f"{path} exists; remove it first to make a new key pair")
    directory.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
    try:
        zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old_umask)
    public.chmod(0o644)
    return public, secret


def is_local_endpoint(endpoint: str) -> bool:
    """Whether only this machine can reach `endpoint`: ipc:// and inproc://, or tcp:// on a
    loopback address (127.0.0.0/8, ::1, localhost). Wildcards, interface names, host names and
    other addresses are not local."""
    scheme, separator, rest = endpoint.partition("://")
    if not separator:
        return False
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rpartition(":")[0].removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AllowList:
    """The ZAP decision: a key is admitted in a domain if it is authorized there. The first
    refusal of each key is logged at WARNING (naming the domain it belongs to, if any); later
    attempts (clients reconnect every few seconds) only at DEBUG."""

    def __init__(self, authorized: dict[str, frozenset[bytes]]) -> None:
        self.authorized = authorized
        self.refused = 0
        self._logged: set[tuple[str, bytes]] = set()
        self._lock = threading.Lock()

    def callback(self, domain: str, key: bytes) -> bool:
        """pyzmq's credentials-provider hook: admit `key` (Z85) in `domain`?"""
        if key in self.authorized.get(domain, frozenset()):
            return True
        with self._lock:
            self.refused += 1
            first = (domain, key) not in self._logged
            if first and len(self._logged) < MAX_LOGGED_REFUSALS:
                self._logged.add((domain, key))
            else:
                first = False
        if first:
            elsewhere = [name for name, keys in self.authorized.items() if key in keys]
            note = f" (it is authorized in {elsewhere[0]})" if elsewhere else ""
            log.warning(
                "refused a %s connection: CURVE key %s is not authorized%s; "
                "further attempts with this key are not logged",
                _ROLE.get(domain, domain), key.decode("ascii", "replace"), note,
            )  # fmt: skip
        else:
            log.debug("refused %s key %s again", domain, key.decode("ascii", "replace"))
        return False


_ROLE = {WORKERS_DOMAIN: "worker", GATEWAYS_DOMAIN: "gateway"}

#: A failed CURVE handshake, as a client sees it -> what to tell the operator.
_HANDSHAKE_FAILURES: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "refused this process's CURVE key (ZAP status {value}): "
    "its public key is not in the broker's authorized-keys directory for this role",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "did not complete the CURVE handshake: is "
    "--curve-server-key that broker's public key?",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "did not complete the CURVE handshake (protocol "
    "error {value:#x}): does that broker run with CURVE?",
}


def report_handshake_failures(sock: zmq.Socket, endpoint: str) -> None:  # type: ignore[type-arg]
    """Log an ERROR the first time the broker at `endpoint` rejects `sock`'s CURVE handshake
    (each kind of failure once per socket: libzmq retries some). A thread reads the socket's
    monitor until the socket is closed."""
    address = f"inproc://msq-curve-monitor-{os.urandom(8).hex()}"
    events = functools.reduce(operator.or_, _HANDSHAKE_FAILURES, zmq.EVENT_MONITOR_STOPPED)
    sock.monitor(address, events)
    # A plain socket on the same libzmq context, whatever kind of socket `sock` is (asyncio).
    monitor: zmq.Socket[bytes] = zmq.Context.shadow(sock.context.underlying).socket(zmq.PAIR)
    monitor.connect(address)
    threading.Thread(
        target=_log_handshake_failures, args=(monitor, endpoint), name="msq-curve-monitor",
        daemon=True,
    ).start()  # fmt: skip


def _log_handshake_failures(monitor: zmq.Socket[bytes], endpoint: str) -> None:
    logged: set[int] = set()
    try:
        with contextlib.suppress(zmq.ContextTerminated):  # the context ended first: done too
            while (event := recv_monitor_message(monitor))["event"] != zmq.EVENT_MONITOR_STOPPED:
                kind = int(event["event"])
                if kind in _HANDSHAKE_FAILURES and kind not in logged:
                    logged.add(kind)
                    what = _HANDSHAKE_FAILURES[kind].format(value=event["value"])
                    log.error("the broker at %s %s (see docs/security.md)", endpoint, what)
    finally:
        monitor.close(linger=0)


def start_authenticator(
    context: zmq.Context,  # type: ignore[type-arg]
    server: CurveServer,
) -> tuple[ThreadAuthenticator, AllowList]:
    """Start the ZAP handler of `context` (before any CURVE socket of it binds) admitting
    `server.authorized`; stop it with `.stop()` after the sockets are closed."""
    allow = AllowList(server.authorized)
    authenticator = ThreadAuthenticator(context, log=logging.getLogger("msq.proto.zap"))
    authenticator.start()
    for domain in server.authorized:
        authenticator.configure_curve_callback(domain, allow)
    log.info(
        "CURVE on: admitting %s",
        ", ".join(f"{len(keys)} {_ROLE.get(d, d)} key(s)" for d, keys in server.authorized.items()),
    )
    return authenticator, allow
