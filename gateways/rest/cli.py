"""`msq-rest-gateway`: run the REST gateway under gunicorn's asgi worker.

    msq-rest-gateway --listen 127.0.0.1:1500 --workers 2 --broker tcp://127.0.0.1:5600

Runs the app of `msq.gateways.rest.app` with the settings of `msq.gateways.rest.gunicorn_conf`,
the same as::

    gunicorn -c python:msq.gateways.rest.gunicorn_conf 'msq.gateways.rest.app:create_app()'
"""

from __future__ import annotations

import argparse
import importlib
import ssl
from collections.abc import Sequence
from typing import Any

from gunicorn.app.base import BaseApplication

from msq.gateways.rest.state import MB, RestSettings
from msq.process import add_log_level, setup_logging
from msq.proto.curve import CurveError
from msq.proto.deadline import DEFAULT_TIMEOUT_S
from msq.proto.transport import DEFAULT_FRONTEND, endpoints
from msq.security import add_curve_client_options, curve_client_from
from msq.tracing import setup_tracing

CONFIG_MODULE = "msq.gateways.rest.gunicorn_conf"


class RestGatewayApplication(BaseApplication):  # type: ignore[misc]
    """Gunicorn running the REST gateway app with our config module and CLI overrides."""

    def __init__(self, settings: RestSettings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        config = vars(importlib.import_module(CONFIG_MODULE))
        for name, value in (config | self.options).items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)

    def load(self) -> Any:
        # Runs in each worker after the fork; imported here because prometheus_client picks
        # its multiprocess mode at import, after the config module has set its directory.
        from msq.gateways.rest.app import create_app  # noqa: PLC0415

        return create_app(self.settings)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="msq-rest-gateway",
        description="Serve MindSpore Serving REST and V2 REST over HTTP, forwarding to msq-broker.",
    )
    parser.add_argument("--listen", default="127.0.0.1:1500", help="HOST:PORT to bind")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--broker",
        action="append",
        help="a broker's frontend endpoint; repeat it or give a comma-separated list for "
        f"several brokers (default {DEFAULT_FRONTEND})",
    )
    parser.add_argument("--max-body-mb", type=float, default=100.0, help="largest request body")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="default request deadline in seconds (X-MSQ-Timeout-Ms / V2 timeout override it)",
    )
    parser.add_argument(
        "--http-status-codes",
        action="store_true",
        help="answer errors on MindSpore Serving routes with 4xx/5xx instead of HTTP 200",
    )
    parser.add_argument("--certfile", help="TLS certificate (PEM): serve HTTPS")
    parser.add_argument("--keyfile", help="TLS private key (PEM)")
    parser.add_argument("--ca-certs", help="CA bundle (PEM) to verify client certificates")
    parser.add_argument("--verify-client", action="store_true", help="require a client certificate")
    add_curve_client_options(parser)
    add_log_level(parser)
    args = parser.parse_args(argv)
    if bool(args.certfile) != bool(args.keyfile):
        parser.error("--certfile and --keyfile go together")
    if (args.ca_certs or args.verify_client) and not args.certfile:
        parser.error("--ca-certs and --verify-client need --certfile and --keyfile")
    try:
        args.broker = ",".join(endpoints(args.broker or DEFAULT_FRONTEND))
    except ValueError as exc:
        parser.error(str(exc))
    if args.workers < 1 or args.max_body_mb <= 0 or args.timeout <= 0:
        parser.error("--workers, --max-body-mb and --timeout must be positive")
    try:
        args.curve = curve_client_from(args)
    except CurveError as exc:
        parser.error(str(exc))
    return args


def gunicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    """The gunicorn settings the command line overrides."""
    options: dict[str, Any] = {"bind": [args.listen], "workers": args.workers}
    if args.certfile:
        options.update(certfile=args.certfile, keyfile=args.keyfile)
    if args.ca_certs:
        options["ca_certs"] = args.ca_certs
    if args.verify_client:
        options["cert_reqs"] = ssl.CERT_REQUIRED
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the REST gateway until it is stopped."""
    args = parse_args(argv)
    # Set up in gunicorn's master: its workers inherit it (gunicorn's own lines keep its format).
    setup_logging("msq-rest-gateway", args.log_level, args.log_format)
    setup_tracing("msq-rest-gateway", args.tracing)
    settings = RestSettings(
        broker=args.broker,
        max_body_bytes=round(args.max_body_mb * MB),
        ms_status_codes=args.http_status_codes,
        default_timeout_s=args.timeout,
        curve=args.curve,
    )
    RestGatewayApplication(settings, gunicorn_options(args)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
