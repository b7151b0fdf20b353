"""`msq-worker`: serve one servable version on one device for a broker.

    msq-worker --device cpu --servable-dir DIR --servable NAME[:VERSION] \\
        --broker tcp://127.0.0.1:5601[,tcp://...] [--threads N] [--capacity N] \\
        [--max-batch-size N] [--dec-key-file PATH [--dec-mode AES-GCM|AES-CBC|SM4-CBC]] \\
        [--legacy-imports]

Prints "msq-worker ready: <servable> v<version> on <device>" on stderr once registered.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from msq.metrics import add_metrics_options, ready_detail, start_exporter
from msq.process import add_log_level, announce_ready, on_stop_signals, setup_logging
from msq.proto.messages import Ready
from msq.proto.transport import DEFAULT_BACKEND, endpoints
from msq.security import add_curve_client_options, curve_client_from
from msq.tracing import setup_tracing
from msq.workers.decryption import (
    DEC_MODES,
    DEFAULT_DEC_MODE,
    Decryption,
    KeyFileError,
    read_key_file,
)
from msq.workers.device import DeviceError, DeviceSpec, default_threads, parse_device

if TYPE_CHECKING:
    from msq.proto.curve import CurveClient
    from msq.workers.servable import LoadedServable


def _servable(text: str) -> tuple[str, int]:
    name, _, version = text.partition(":")
    if not name or (version and not version.isdigit()):
        raise argparse.ArgumentTypeError(f"invalid servable {text!r}: use NAME or NAME:VERSION")
    return name, int(version or 0)


def _device(text: str) -> DeviceSpec:
    try:
        return parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return int(text)


def _check_endpoint(endpoint: str) -> None:
    """Raise ValueError now, before models load, if the broker endpoint is invalid."""
    with zmq.Context() as context, context.socket(zmq.DEALER) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise ValueError(f"invalid broker endpoint {endpoint!r}: {exc}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of `msq-worker`."""
    parser = argparse.ArgumentParser(
        prog="msq-worker", description="Serve a servable on one device for an msq broker."
    )
    parser.add_argument(
        "--device",
        type=_device,
        default=DeviceSpec("cpu"),
        help="cpu, gpu:N or ascend:N (default cpu)",
    )
    parser.add_argument(
        "--servable-dir",
        type=Path,
        required=True,
        help="directory holding {servable}/servable_config.py",
    )
    parser.add_argument(
        "--servable",
        type=_servable,
        required=True,
        metavar="NAME[:VERSION]",
        help="servable to serve; version 0 or none: the newest",
    )
    parser.add_argument(
        "--broker",
        action="append",
        help="a broker's backend endpoint; repeat it or give a comma-separated list to serve "
        f"several brokers (default {DEFAULT_BACKEND})",
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        help="MindSpore CPU kernel threads (default: cores / --workers-on-host)",
    )
    parser.add_argument(
        "--workers-on-host",
        type=_positive,
        default=1,
        help="workers sharing this host's cores (default 1)",
    )
    parser.add_argument(
        "--capacity",
        type=_positive,
        default=2,
        help="jobs the broker may send before a result (default 2)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=_positive,
        help="largest batch for dynamic-batch models (overrides the servable)",
    )
    parser.add_argument(
        "--dec-key-file",
        type=Path,
        metavar="PATH",
        help="file holding the raw key (16, 24 or 32 bytes; mode 600) of encrypted model files",
    )
    parser.add_argument(
        "--dec-mode",
        choices=DEC_MODES,
        default=DEFAULT_DEC_MODE,
        help="how the model files were encrypted (default %(default)s)",
    )
    parser.add_argument(
        "--legacy-imports",
        action="store_true",
        help="map the MindSpore 1.x dataset modules (c_transforms, py_transforms) and the "
        "PIL.Image constants removed in Pillow 10 to their current equivalents",
    )
    add_curve_client_options(parser)
    add_metrics_options(parser)
    add_log_level(parser, default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the worker until SIGTERM or SIGINT; 1 if the servable or device cannot be used."""
    args = parse_args(argv)
    setup_logging("msq-worker", args.log_level, args.log_format)
    setup_tracing("msq-worker", args.tracing)
    try:
        brokers = endpoints(args.broker or DEFAULT_BACKEND)
        for broker in brokers:
            _check_endpoint(broker)
        curve = curve_client_from(args)
        decryption: Decryption | None = None
        if args.dec_key_file is not None:
            decryption = read_key_file(args.dec_key_file, args.dec_mode)
    except (ValueError, KeyFileError) as exc:  # CurveError is a ValueError
        print(f"msq-worker: {exc}", file=sys.stderr, flush=True)
        return 1
    # Imported here: MindSpore takes seconds to import, `--help` should not wait.
    from msq.workers.definition import ServableLoadError  # noqa: PLC0415
    from msq.workers.device import configure_mindspore  # noqa: PLC0415
    from msq.workers.legacy import legacy_imports  # noqa: PLC0415
    from msq.workers.servable import load_servable  # noqa: PLC0415

    name, version = args.servable
    # On while serving: Python stages use the removed names per request.
    with legacy_imports(enabled=args.legacy_imports):
        try:
            configure_mindspore(args.device, args.threads or default_threads(args.workers_on_host))
            servable = load_servable(
                args.servable_dir,
                name,
                version,
                max_batch_size=args.max_batch_size,
                decryption=decryption,
            )
        except (DeviceError, ServableLoadError) as exc:
            print(f"msq-worker: {exc}", file=sys.stderr, flush=True)
            return 1
        serve(args, servable, brokers, curve)
    return 0


def serve(
    args: argparse.Namespace,
    servable: LoadedServable,
    brokers: list[str],
    curve: CurveClient | None,
) -> None:
    """Register `servable` with every broker (with CURVE when `curve`) and run its jobs until
    SIGTERM or SIGINT."""
    from msq.workers.loop import WorkerLoop  # noqa: PLC0415

    ready = Ready(
        servable.name,
        servable.version,
        servable.signatures,
        args.capacity,
        str(args.device),
        os.getpid(),
    )
    announced = False
    address: str | None = None

    def announce() -> None:
        nonlocal announced
        if not announced:
            announced = True
            detail = f"{servable.name} v{servable.version} on {args.device}"
            announce_ready("msq-worker", ready_detail(detail, address))

    loop = WorkerLoop(brokers, ready, servable.execute, on_registered=announce, curve=curve)
    if args.metrics_port is not None:
        from msq.workers.metrics import WorkerMetrics  # noqa: PLC0415

        metrics = WorkerMetrics(
            servable.name, servable.version, str(args.device), lambda: loop.runner.expired
        )
        loop.on_result = metrics.on_result
        for runner in servable.methods.values():
            runner.on_stage = metrics.on_stage
        address = start_exporter(args)
    on_stop_signals(loop.stop)
    loop.run()


if __name__ == "__main__":
    sys.exit(main())
