"""`msq`: `msq serve` starts the broker, workers and both gateways; `msq status` shows them
(`msq.launcher.status`); `msq keys` makes CURVE keys (`msq.launcher.keys`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from msq.launcher import keys, status
from msq.launcher.metrics import Target, expose_metrics, write_file_sd
from msq.launcher.supervisor import Child, Supervisor
from msq.metrics import DEFAULT_METRICS_HOST
from msq.process import add_log_level, log_options, on_stop_signals, setup_logging
from msq.proto import transport
from msq.security import serve_curve_options

#: Seconds each stage may take to become ready (workers load and warm up their models).
START_TIMEOUT_S = 180.0


def build_parser() -> argparse.ArgumentParser:
    """The options of `msq`."""
    parser = argparse.ArgumentParser(prog="msq", description="msq: serve MindSpore models.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="start broker, workers and gateways for a servable directory"
    )
    serve.add_argument(
        "servable_dir", type=Path, help="directory of MindSpore Serving-style servables"
    )
    serve.add_argument(
        "--servable",
        action="append",
        default=[],
        metavar="NAME[:VERSION]",
        help="servable to serve (repeatable; default: every servable found)",
    )
    serve.add_argument("--workers", type=int, default=1, help="workers per servable")
    serve.add_argument("--device", default="cpu", help="cpu, gpu:N or ascend:N")
    serve.add_argument("--broker-frontend", default=transport.DEFAULT_FRONTEND)
    serve.add_argument("--broker-backend", default=transport.DEFAULT_BACKEND)
    serve.add_argument(
        "--grpc",
        default="127.0.0.1:5500",
        metavar="HOST:PORT",
        help="gRPC gateway address (default %(default)s)",
    )
    serve.add_argument(
        "--rest",
        default="127.0.0.1:1500",
        metavar="HOST:PORT",
        help="REST gateway address (default %(default)s)",
    )
    serve.add_argument(
        "--rest-workers", type=int, default=2, help="gunicorn worker processes of the REST gateway"
    )
    serve.add_argument("--no-grpc", action="store_true", help="do not start the gRPC gateway")
    serve.add_argument("--no-rest", action="store_true", help="do not start the REST gateway")
    serve.add_argument(
        "--metrics-base-port",
        type=int,
        metavar="PORT",
        help="serve each process's Prometheus metrics from PORT on (default: off; the REST "
        "gateway always serves /metrics on its own address)",
    )
    serve.add_argument(
        "--metrics-host",
        default=DEFAULT_METRICS_HOST,
        help="address the metrics servers bind (default %(default)s)",
    )
    serve.add_argument(
        "--metrics-sd-file",
        type=Path,
        metavar="PATH",
        help="write the metrics targets as a Prometheus file-SD JSON file",
    )
    serve.add_argument(
        "--curve-dir",
        type=Path,
        metavar="DIR",
        help="CURVE on every broker connection, with the keys of `msq keys generate DIR`",
    )
    serve.add_argument(
        "--allow-insecure",
        action="store_true",
        help="let the broker bind a non-loopback address without CURVE (logged as a WARNING)",
    )
    add_log_level(serve)
    status.add_parser(commands)
    keys.add_parser(commands)
    return parser  # fmt: skip


def find_servables(servable_dir: Path) -> list[str]:
    """Every sub-directory of `servable_dir` holding a servable_config.py."""
    return sorted(p.parent.name for p in servable_dir.glob("*/servable_config.py"))


def plan(args: argparse.Namespace) -> tuple[list[Child], list[Child], list[Child]]:
    """The broker, the workers and the gateways `msq serve` starts for these options."""
    servables = args.servable or find_servables(args.servable_dir)
    if not servables:
        raise ValueError(f"no servable (a folder with servable_config.py) in {args.servable_dir}")
    log_level = log_options(args)
    curve: dict[str, list[str]] = {"broker": [], "worker": [], "gateway": []}
    if args.curve_dir is not None:
        curve = serve_curve_options(args.curve_dir)
    if args.allow_insecure:
        curve["broker"].append("--allow-insecure")
    broker = Child(
        "broker",
        ["msq-broker", "--frontend", args.broker_frontend, "--backend", args.broker_backend,
         *curve["broker"], *log_level],
        {"kind": "broker"},
    )  # fmt: skip
    workers_on_host = str(len(servables) * args.workers)
    workers = [
        Child(
            f"worker {servable} #{index}",
            [
                "msq-worker",
                "--device",
                args.device,
                "--servable-dir",
                str(args.servable_dir),
                "--servable",
                servable,
                "--broker",
                args.broker_backend,
                "--workers-on-host",
                workers_on_host,
                *curve["worker"],
                *log_level,
            ],
            {"kind": "worker", "servable": servable},
        )
        for servable in servables
        for index in range(1, args.workers + 1)
    ]
    gateways = []
    if not args.no_grpc:
        gateways.append(
            Child(
                "grpc",
                [
                    "msq-grpc-gateway",
                    "--listen",
                    args.grpc,
                    "--broker",
                    args.broker_frontend,
                    *curve["gateway"],
                    *log_level,
                ],
                {"kind": "grpc"},
            )
        )
    if not args.no_rest:
        gateways.append(
            Child(
                "rest",
                [
                    "msq-rest-gateway",
                    "--listen",
                    args.rest,
                    "--broker",
                    args.broker_frontend,
                    "--workers",
                    str(args.rest_workers),
                    *curve["gateway"],
                    *log_level,
                ],
                {"kind": "rest"},
            )
        )
    return [broker], workers, gateways


def main(argv: list[str] | None = None) -> int:
    """Run `msq status`, or `msq serve` until Ctrl-C or SIGTERM (stopping every process it
    started)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "status":
        return status.run(args)
    if args.command == "keys":
        return keys.run(args)
    setup_logging("msq", args.log_level, args.log_format)
    if not args.servable_dir.is_dir():
        parser.error(f"{args.servable_dir} is not a directory")
    try:
        stages = plan(args)
    except ValueError as exc:  # CurveError is a ValueError
        parser.error(str(exc))
    targets: list[Target] = []
    if args.metrics_base_port is not None:
        children = [child for stage in stages for child in stage]
        targets = expose_metrics(children, args.metrics_host, args.metrics_base_port)
        if args.metrics_sd_file is not None:
            write_file_sd(args.metrics_sd_file, targets)
    supervisor = Supervisor()
    on_stop_signals(supervisor.stop)
    try:
        for stage in stages:
            supervisor.start(*stage, timeout_s=START_TIMEOUT_S)
    except RuntimeError as exc:
        logging.error("start-up failed: %s", exc)
        supervisor.shutdown()
        return 1
    print(_banner(args, targets), file=sys.stderr, flush=True)
    supervisor.watch()
    logging.info("stopping")
    supervisor.shutdown()
    return 0


def _banner(args: argparse.Namespace, targets: list[Target]) -> str:
    lines = ["msq ready:"]
    if not args.no_grpc:
        lines.append(f"  gRPC (MindSpore Serving MSService + KServe V2): {args.grpc}")
    if not args.no_rest:
        lines.append(f"  REST: http://{args.rest}/model/<servable>:<method>  and  /v2/...")
        lines.append(
            f'  try: curl -X POST -d \'{{"instances":{{"x1":[[1.0,1.0],[1.0,1.0]],'
            f'"x2":[[1.0,1.0],[1.0,1.0]]}}}}\' http://{args.rest}/model/add:add_common'
        )
    lines.append(f"  broker: gateways -> {args.broker_frontend}, workers -> {args.broker_backend}")
    for target in targets:
        what = " ".join(target.labels.values())
        lines.append(f"  metrics ({what}): http://{target.address}/metrics")
    lines.append("  Ctrl-C stops everything.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
