"""`msq-broker`: run the Main node (the ZeroMQ broker between gateways and workers)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from prometheus_client import REGISTRY

from msq.broker.core import BrokerCore
from msq.broker.loop import BrokerLoop
from msq.broker.settings import BrokerSettings, load_overrides
from msq.metrics import Snapshot, add_metrics_options, ready_detail, start_exporter
from msq.process import add_log_level, announce_ready, on_stop_signals, setup_logging
from msq.proto import transport
from msq.proto.batching import SETTINGS, read_settings
from msq.proto.deadline import DEFAULT_TIMEOUT_S
from msq.security import add_curve_server_options, check_binds, curve_server_from


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of `msq-broker`."""
    parser = argparse.ArgumentParser(
        prog="msq-broker",
        description="msq broker: queues, batches and dispatches requests to model workers.",
    )
    parser.add_argument(
        "--frontend",
        default=transport.DEFAULT_FRONTEND,
        help="endpoint gateways connect to (default %(default)s)",
    )
    parser.add_argument(
        "--backend",
        default=transport.DEFAULT_BACKEND,
        help="endpoint workers connect to (default %(default)s)",
    )
    parser.add_argument(
        "--config", type=Path, help="TOML file with per-servable [batching.<servable>] overrides"
    )
    for setting in SETTINGS.values():
        parser.add_argument(
            f"--{setting.keyword.replace('_', '-')}",
            dest=setting.keyword,
            type=setting.kind,
            help=f"{setting.doc}, for every servable (overrides servable_config.py)",
        )
    parser.add_argument(
        "--default-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="deadline (s) of requests that set none (default %(default)s)",
    )
    parser.add_argument(
        "--job-timeout",
        type=float,
        default=120.0,
        help="a worker that holds a job longer (s) is considered hung",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=1.0,
        help="seconds between heartbeats; a worker silent for 3 is lost",
    )
    parser.add_argument(
        "--max-redispatch",
        type=int,
        default=2,
        help="times an instance is re-sent after its worker was lost",
    )
    parser.add_argument(
        "--max-message-mb",
        type=int,
        default=512,
        help="largest message accepted, in MB (default %(default)s)",
    )
    add_curve_server_options(parser)
    add_metrics_options(parser)
    add_log_level(parser)
    return parser  # fmt: skip


def settings_from(args: argparse.Namespace) -> BrokerSettings:
    """Broker settings from parsed arguments; command-line batching values win over the file."""
    overrides = load_overrides(args.config) if args.config else {}
    command_line = read_settings(
        {setting.keyword: getattr(args, setting.keyword) for setting in SETTINGS.values()},
        by_keyword=True,
    )
    if command_line:
        overrides = {**overrides, "*": {**overrides.get("*", {}), **command_line}}
    return BrokerSettings(
        heartbeat_interval_s=args.heartbeat_interval,
        default_timeout_s=args.default_timeout,
        job_timeout_s=args.job_timeout,
        max_redispatch=args.max_redispatch,
        overrides=overrides,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the broker until SIGINT or SIGTERM."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging("msq-broker", args.log_level, args.log_format)
    try:
        settings = settings_from(args)
        curve = curve_server_from(args)
        check_binds((args.frontend, args.backend), curve, args.allow_insecure)
    except (OSError, ValueError) as exc:  # CurveError is a ValueError
        parser.error(str(exc))
    metrics = Snapshot() if args.metrics_port is not None else None
    loop = BrokerLoop(
        BrokerCore(settings, now=time.monotonic()),
        args.frontend,
        args.backend,
        max_message_bytes=args.max_message_mb * 1024 * 1024,
        metrics=metrics,
        curve=curve,
    )
    on_stop_signals(loop.stop)
    address = None
    if metrics is not None:
        REGISTRY.register(metrics)
        address = start_exporter(args)
    frontend, backend = loop.endpoints
    announce_ready("msq-broker", ready_detail(f"frontend {frontend}, backend {backend}", address))
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
