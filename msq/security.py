"""The CURVE options msq's programs share, the rule for binding beyond loopback, and the key
layout `msq keys generate` writes and `msq serve --curve-dir` reads.

Clients of the broker (workers, gateways, `msq status`) take `--curve-secret-key` (their own
`.key_secret` file) and `--curve-server-key` (the broker's `.key` file); the broker takes its
`--curve-secret-key` and one authorized-keys directory per role. Only paths travel in argv:
keys are read from files, never given on the command line or logged.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path

from msq.proto import transport
from msq.proto.curve import (
    GATEWAYS_DOMAIN,
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    WORKERS_DOMAIN,
    CurveClient,
    CurveError,
    CurveServer,
    is_local_endpoint,
    load_authorized,
    load_key_pair,
    load_public_key,
)

log = logging.getLogger(__name__)

#: The authorized-keys directory of each role inside a key directory.
AUTHORIZED_DIRS = {"workers": "authorized-workers", "gateways": "authorized-gateways"}
#: The key pairs `msq keys generate DIR` makes by default, and the role each is authorized as.
STANDARD_PAIRS: dict[str, str | None] = {"broker": None, "worker": "workers", "gateway": "gateways"}


def add_curve_client_options(parser: argparse.ArgumentParser) -> None:
    """`--curve-secret-key` and `--curve-server-key`, for a program that connects to brokers."""
    group = parser.add_argument_group("CURVE (encrypted, authenticated broker connections)")
    group.add_argument(
        "--curve-secret-key",
        type=Path,
        metavar="FILE",
        help=f"this process's key pair (a {SECRET_SUFFIX} file from `msq keys generate`)",
    )
    group.add_argument(
        "--curve-server-key",
        type=Path,
        metavar="FILE",
        help=f"the broker's public key (its {PUBLIC_SUFFIX} file); every broker given uses it",
    )


def curve_client_from(args: argparse.Namespace) -> CurveClient | None:
    """The client's CURVE settings (None: plaintext); CurveError when the files do not fit."""
    return curve_client(args.curve_secret_key, args.curve_server_key)


def curve_client(secret_key: Path | None, server_key: Path | None) -> CurveClient | None:
    """A client's CURVE settings from its key-pair file and the broker's public-key file
    (None when neither is given)."""
    if secret_key is None and server_key is None:
        return None
    if secret_key is None or server_key is None:
        raise CurveError("--curve-secret-key and --curve-server-key go together")
    return CurveClient(load_key_pair(secret_key), load_public_key(server_key))


def add_curve_server_options(parser: argparse.ArgumentParser) -> None:
    """The broker's CURVE options and `--allow-insecure`."""
    group = parser.add_argument_group("CURVE (encrypt and authenticate every connection)")
    group.add_argument(
        "--curve-secret-key",
        type=Path,
        metavar="FILE",
        help=f"the broker's key pair ({SECRET_SUFFIX} file): be the CURVE server on both sockets",
    )
    group.add_argument(
        "--curve-authorized-workers",
        type=Path,
        metavar="DIR",
        help=f"public keys ({PUBLIC_SUFFIX} files) of the workers allowed to register",
    )
    group.add_argument(
        "--curve-authorized-gateways",
        type=Path,
        metavar="DIR",
        help=f"public keys ({PUBLIC_SUFFIX} files) of the gateways (and `msq status`) allowed "
        "to submit",
    )
    group.add_argument(
        "--allow-insecure",
        action="store_true",
        help="bind a non-loopback address without CURVE anyway (logged as a WARNING)",
    )


def curve_server_from(args: argparse.Namespace) -> CurveServer | None:
    """The broker's CURVE settings (None: plaintext); CurveError when they do not fit."""
    directories = (args.curve_authorized_workers, args.curve_authorized_gateways)
    if args.curve_secret_key is None:
        if any(directory is not None for directory in directories):
            raise CurveError("--curve-authorized-workers/-gateways need --curve-secret-key")
        return None
    if any(directory is None for directory in directories):
        raise CurveError(
            "--curve-secret-key needs --curve-authorized-workers and --curve-authorized-gateways"
        )
    return CurveServer(
        load_key_pair(args.curve_secret_key),
        {
            WORKERS_DOMAIN: load_authorized(args.curve_authorized_workers),
            GATEWAYS_DOMAIN: load_authorized(args.curve_authorized_gateways),
        },
    )


def check_binds(endpoints: Iterable[str], curve: CurveServer | None, allow_insecure: bool) -> None:
    """Refuse (CurveError) to bind a non-loopback endpoint without CURVE unless
    `allow_insecure`, which logs a WARNING instead (each of `endpoints` may be a
    comma-separated list, as a broker binds it)."""
    exposed = [
        endpoint
        for endpoint in transport.endpoints(list(endpoints))
        if not is_local_endpoint(endpoint)
    ]
    if curve is not None or not exposed:
        return
    if not allow_insecure:
        raise CurveError(
            f"refusing to bind {', '.join(exposed)} without CURVE: anyone who reaches it could "
            "register as a worker (and receive users' tensors) or submit requests. Give "
            "--curve-secret-key, --curve-authorized-workers and --curve-authorized-gateways "
            "(keys from `msq keys generate`; see docs/security.md), bind a loopback address, "
            "or pass --allow-insecure if this is intended"
        )
    log.warning(
        "INSECURE (--allow-insecure): %s bound without CURVE; any process that reaches it can "
        "register as a worker or submit requests, and traffic is not encrypted",
        ", ".join(exposed),
    )


def serve_gateway_curve(directory: Path) -> CurveClient | None:
    """The CURVE settings of a connection `msq serve` makes itself to its brokers (its model
    controller, which connects like a gateway), from the standard keys of `directory`."""
    return curve_client(directory / f"gateway{SECRET_SUFFIX}", directory / f"broker{PUBLIC_SUFFIX}")


def serve_curve_options(directory: Path) -> dict[str, list[str]]:
    """The CURVE options `msq serve --curve-dir DIR` gives its "broker", "worker" and
    "gateway" processes: the standard key pairs and authorized-keys directories of DIR
    (CurveError, before anything starts, if one is missing or unreadable)."""

    def pair(name: str) -> str:
        return str(directory / f"{name}{SECRET_SUFFIX}")

    for name in STANDARD_PAIRS:
        load_key_pair(Path(pair(name)))
    for role in AUTHORIZED_DIRS.values():
        load_authorized(directory / role)
    server_key = str(directory / f"broker{PUBLIC_SUFFIX}")
    return {
        "broker": [
            "--curve-secret-key", pair("broker"),
            "--curve-authorized-workers", str(directory / AUTHORIZED_DIRS["workers"]),
            "--curve-authorized-gateways", str(directory / AUTHORIZED_DIRS["gateways"]),
        ],
        "worker": ["--curve-secret-key", pair("worker"), "--curve-server-key", server_key],
        "gateway": ["--curve-secret-key", pair("gateway"), "--curve-server-key", server_key],
    }  # fmt: skip
