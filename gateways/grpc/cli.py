"""`msq-grpc-gateway`: serve MindSpore Serving's gRPC protocol and the V2 (KServe) gRPC protocol
in front of an msq broker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.internal import api_implementation

from msq.gateways.grpc.metrics import RequestMetrics
from msq.gateways.grpc.server import (
    DEFAULT_LISTEN,
    DEFAULT_MAX_MESSAGE_MB,
    MAX_MESSAGE_MB,
    Gateway,
    GatewaySettings,
    TLSConfig,
)
from msq.gateways.grpc.workers import check_listen, is_child, supervise
from msq.metrics import add_metrics_options, ready_detail, start_exporter
from msq.process import add_log_level, announce_ready, on_stop_signals, setup_logging
from msq.proto.deadline import DEFAULT_TIMEOUT_S
from msq.proto.transport import DEFAULT_FRONTEND, endpoints
from msq.security import add_curve_client_options, curve_client_from
from msq.tracing import setup_tracing

log = logging.getLogger("msq.gateways.grpc")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of `msq-grpc-gateway`."""
    parser = argparse.ArgumentParser(
        prog="msq-grpc-gateway",
        description="msq gRPC gateway: MindSpore Serving MSService.Predict and the Open "
        "Inference Protocol (KServe V2) GRPCInferenceService, with health and reflection.",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        help="HOST:PORT or unix:PATH to serve on (default %(default)s)",
    )
    parser.add_argument(
        "--broker",
        action="append",
        help="a broker's frontend endpoint; repeat it or give a comma-separated list for "
        f"several brokers (default {DEFAULT_FRONTEND})",
    )
    parser.add_argument(
        "--max-msg-mb",
        type=int,
        default=DEFAULT_MAX_MESSAGE_MB,
        help=f"largest request or reply in MB, 1 to {MAX_MESSAGE_MB} (default %(default)s)",
    )
    parser.add_argument(
        "--default-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="deadline (s) of calls that set none (default %(default)s)",
    )
    parser.add_argument("--tls-cert", type=Path, help="server certificate chain (PEM): serve TLS")
    parser.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate(s) for client certificates")
    parser.add_argument(
        "--verify-client",
        action="store_true",
        help="require a client certificate signed by --tls-ca (mutual TLS)",
    )
    parser.add_argument(
        "--grpc-workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="gateway processes sharing the port (SO_REUSEPORT) under a supervising parent, "
        "each with its own broker link (default %(default)s: one process)",
    )
    add_curve_client_options(parser)
    add_metrics_options(parser)
    add_log_level(parser)
    return parser


def settings_from(args: argparse.Namespace) -> GatewaySettings:
    """Check the options and turn them into settings; raise ValueError when they do not fit."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_cert is None and (args.tls_ca is not None or args.verify_client):
        raise ValueError("--tls-ca and --verify-client need --tls-cert and --tls-key")
    if args.verify_client and args.tls_ca is None:
        raise ValueError("--verify-client needs --tls-ca")
    if args.default_timeout <= 0:
        raise ValueError("--default-timeout must be positive")
    check_listen(args.listen, args.grpc_workers)
    brokers = ",".join(endpoints(args.broker or DEFAULT_FRONTEND))
    tls = None
    if args.tls_cert is not None:
        for path in (args.tls_cert, args.tls_key, args.tls_ca):
            if path is not None and not path.is_file():
                raise ValueError(f"no such file: {path}")
        tls = TLSConfig(args.tls_cert, args.tls_key, args.tls_ca, args.verify_client)
    return GatewaySettings(
        listen=args.listen,
        broker=brokers,
        max_message_mb=args.max_msg_mb,
        tls=tls,
        default_timeout_s=args.default_timeout,
        curve=curve_client_from(args),
        reuse_port=args.grpc_workers > 1,
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


async def serve(settings: GatewaySettings, metrics: argparse.Namespace | None = None) -> None:
    """Run the gateway until SIGINT or SIGTERM; serve its metrics if `metrics` (the parsed
    command line) asks for them (a `--grpc-workers` child only counts them: its parent serves
    them)."""
    counted = metrics is not None and metrics.metrics_port is not None
    served = counted and not is_child()
    gateway = Gateway(settings, RequestMetrics() if counted else None)
    stopping = asyncio.Event()
    on_stop_signals(stopping.set, asyncio.get_running_loop())
    await gateway.start()
    scheme = "TLS" if settings.tls is not None else "plaintext"
    log.info("serving %s on %s, broker %s", scheme, gateway.address, settings.broker)
    if api_implementation.Type() == "python":
        log.warning(
            "protobuf runs its pure-Python implementation (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="
            "python, which importing MindSpore sets in its process and passes on): decoding is "
            "several times slower; start the gateway without that variable"
        )
    address = start_exporter(metrics) if served and metrics is not None else None
    announce_ready("msq-grpc-gateway", ready_detail(f"listening on {gateway.address}", address))
    await stopping.wait()
    log.info("stopping")
    await gateway.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `msq-grpc-gateway`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging("msq-grpc-gateway", args.log_level, args.log_format)
    setup_tracing("msq-grpc-gateway", args.tracing)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.grpc_workers > 1 and not is_child():
        return supervise(args, sys.argv[1:] if argv is None else argv)
    try:
        asyncio.run(serve(settings, args))
    except RuntimeError as exc:  # grpcio: the address cannot be bound
        print(f"msq-grpc-gateway: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
