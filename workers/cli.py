"""`msq-worker`: serve one servable version on one device for a broker.

    msq-worker --device cpu --servable-dir DIR --servable NAME[:VERSION] \\
        --broker tcp://127.0.0.1:5601[,tcp://...] [--threads N] [--capacity N] \\
        [--max-batch-size N] [--dec-key-file PATH [--dec-mode AES-GCM|AES-CBC|SM4-CBC]] \\
        [--legacy-imports]

A distributed servable (`declare_servable(rank_size=N)`) needs no other flag: the worker starts
MindSpore's scheduler and N rank processes on this host, one device of `--device` per rank
(`cpu`: all on the CPU; `gpu:0,1`, `ascend:0-7`). `--distributed-address HOST:PORT` binds its
agent endpoint elsewhere, `--remote-agents` waits for `msq-agent`s instead of starting ranks,
`--wait-agents-s` bounds that wait, `--rank-table FILE` maps ranks to device ids (HCCL JSON).
See docs/distributed.md.

Prints "msq-worker ready: <servable> v<version> on <device>" on stderr once registered.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from msq.metrics import add_metrics_options, ready_detail, start_exporter
from msq.process import add_log_level, announce_ready, on_stop_signals, setup_logging
from msq.proto.curve import is_local_endpoint
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
from msq.workers.rank_table import load_rank_table

if TYPE_CHECKING:
    from msq.proto.curve import CurveClient
    from msq.workers.distributed.group import GroupSettings
    from msq.workers.servable import LoadedServable


def _servable(text: str) -> tuple[str, int]:
    name, _, version = text.partition(":")
    if not name or (version and not version.isdigit()):
        raise argparse.ArgumentTypeError(f"invalid servable {text!r}: use NAME or NAME:VERSION")
    return name, int(version or 0)


def _devices(text: str) -> tuple[DeviceSpec, ...]:
    """`cpu`, `gpu:N`, `ascend:N`, or a list for the ranks of a distributed servable."""
    from msq.launcher.devices import parse_devices, worker_device  # noqa: PLC0415

    try:
        return tuple(parse_device(worker_device(device)) for device in parse_devices(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _address(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"invalid address {text!r}: use HOST:PORT (port 0: any)")
    return text


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
        dest="devices",
        type=_devices,
        default=(DeviceSpec("cpu"),),
        help="cpu, gpu:N or ascend:N (default cpu); the ranks of a distributed servable: "
        "one device per rank, e.g. gpu:0,1 or ascend:0-7",
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
    distributed = parser.add_argument_group("distributed servables (declare_servable)")
    distributed.add_argument(
        "--distributed-address",
        type=_address,
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="where the agent endpoint binds (default loopback, any free port)",
    )
    distributed.add_argument(
        "--remote-agents",
        action="store_true",
        help="start no rank processes: wait for msq-agent to join at --distributed-address",
    )
    distributed.add_argument(
        "--wait-agents-s",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="seconds to wait for every rank to join and load (default 0: forever)",
    )
    distributed.add_argument(
        "--allow-insecure",
        action="store_true",
        help="let --distributed-address bind beyond loopback: agents join without a key "
        "(logged as a WARNING)",
    )
    distributed.add_argument(
        "--rank-table",
        type=Path,
        metavar="FILE",
        help="HCCL rank table (JSON): validated, maps each rank to its device id",
    )
    distributed.add_argument(
        "--agent-liveness-s",
        type=_seconds,
        default=3.0,
        metavar="S",
        help="a rank silent this long, or this late with a call, restarts the group (default 3)",
    )
    add_metrics_options(parser)
    add_log_level(parser, default="WARNING")
    args = parser.parse_args(argv)
    args.device = args.devices[0]
    return args


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
        group = group_settings(args)
    except (ValueError, KeyFileError) as exc:  # CurveError is a ValueError
        print(f"msq-worker: {exc}", file=sys.stderr, flush=True)
        return 1
    # Imported here: MindSpore takes seconds to import, `--help` should not wait.
    from msq.workers.definition import ServableLoadError  # noqa: PLC0415
    from msq.workers.device import configure_mindspore  # noqa: PLC0415
    from msq.workers.distributed.model import distributed_models  # noqa: PLC0415
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
                group=group,
            )
            if len(args.devices) > 1 and not distributed_models(servable):
                raise DeviceError(
                    f"--device lists {len(args.devices)} devices: a list is for the ranks of "
                    "a distributed servable; start one worker per device"
                )
        except (DeviceError, ServableLoadError) as exc:
            print(f"msq-worker: {exc}", file=sys.stderr, flush=True)
            return 1
        serve(args, servable, brokers, curve)
    return 0


def check_agent_endpoint(address: str, allow_insecure: bool) -> None:
    """Refuse (ValueError) to bind the agent endpoint beyond loopback unless `allow_insecure`,
    which logs a WARNING instead: agents join it without a key."""
    if is_local_endpoint(f"tcp://{address}"):
        return
    if not allow_insecure:
        raise ValueError(
            f"refusing to bind the agent endpoint {address} beyond loopback: agents join it "
            "without a key, so anyone who reaches it could take a rank and see users' tensors. "
            "Bind 127.0.0.1 when every rank runs on this host, or pass --allow-insecure if this "
            "is intended (on a network you trust)"
        )
    logging.getLogger("msq.workers.cli").warning(
        "INSECURE (--allow-insecure): agent endpoint %s bound beyond loopback; any process that "
        "reaches it can join as a rank, and traffic is not encrypted",
        address,
    )


def group_settings(args: argparse.Namespace) -> GroupSettings:
    """How the ranks of a distributed servable run, from the command line.

    Raises ValueError for a rank table that does not load (`msq.workers.rank_table`)."""
    from msq.workers.distributed.group import GroupSettings  # noqa: PLC0415
    from msq.workers.distributed.processes import decryption_args  # noqa: PLC0415

    check_agent_endpoint(args.distributed_address, args.allow_insecure)
    devices = tuple(str(device) for device in args.devices)
    table_ranks: int | None = None
    if args.rank_table is not None:
        table = load_rank_table(args.rank_table)  # RankTableError is a ValueError
        table_ranks = len(table.ranks)
        kind = args.device.kind
        devices = tuple(
            "cpu" if kind == "cpu" else f"{kind}:{rank.device_id}" for rank in table.ranks
        )
    threads = args.threads or default_threads(args.workers_on_host)
    rank_args = [*decryption_args(args.dec_key_file, args.dec_mode),
                 "--log-level", args.log_level, "--log-format", args.log_format,
                 "--liveness-s", str(args.agent_liveness_s)]  # fmt: skip
    return GroupSettings(
        address=args.distributed_address,
        remote_agents=args.remote_agents,
        wait_agents_s=args.wait_agents_s,
        devices=devices,
        threads=threads,
        liveness_s=args.agent_liveness_s,
        rank_args=tuple(rank_args),
        rank_table_ranks=table_ranks,
    )


def serve(
    args: argparse.Namespace,
    servable: LoadedServable,
    brokers: list[str],
    curve: CurveClient | None,
) -> None:
    """Register `servable` with every broker (with CURVE when `curve`) and run its jobs until
    SIGTERM or SIGINT."""
    from msq.workers.distributed.model import distributed_models  # noqa: PLC0415
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
    groups = [model.group for model in distributed_models(servable)]
    for model in distributed_models(servable):
        model.serve_with(loop.suspend, loop.resume)
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
    try:
        loop.run()
    finally:
        for group in groups:
            group.close()


if __name__ == "__main__":
    sys.exit(main())
