"""`msq-agent`: join ranks of a distributed servable to its worker, from any host.

    msq-agent --worker HOST:PORT [--rank-start R] [--ranks N] [--device D]
        [--model-files F ...] [--dec-key-file F [--dec-mode M]]

Starts one rank process per rank R..R+N-1 (default: rank 0 and every rank the worker's servable
has), one device of `--device` per rank (`cpu`: all on the CPU). Each loads `--model-files`
(one per local rank, in order) or, by default, the rank's file of the worker's servable version
(paths the worker names: a shared file system). When a rank exits because its group restarts,
or is killed, the others are killed too and all join again; a rank the worker refuses (wrong
rank, already taken) or that cannot load makes `msq-agent` exit 1 with the reason. Each rank
prints "msq-rank ready: ..." on the shared stderr once it is in the cluster with its model loaded
(what a supervisor of `msq-agent`, such as `distributed.startup_agents`, waits for).
MindSpore Serving's `distributed.startup_agents` maps onto it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from msq.process import add_log_level, log_options, on_stop_signals, setup_logging
from msq.proto import transport
from msq.proto.messages import AgentQuery, AgentRanks
from msq.proto.wire import WireError
from msq.workers.decryption import DEC_MODES, DEFAULT_DEC_MODE, KeyFileError, read_key_file
from msq.workers.device import default_threads
from msq.workers.distributed import processes


class AgentError(Exception):
    """`msq-agent` exits 1 with this message."""


def _address(text: str) -> str:
    endpoint = text if text.startswith("tcp://") else f"tcp://{text}"
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid worker address {text!r}: use HOST:PORT")
    return endpoint


def _count(text: str, minimum: int = 0) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= {minimum}")
    return int(text)


def _positive(text: str) -> int:
    return _count(text, 1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of `msq-agent`."""
    parser = argparse.ArgumentParser(
        prog="msq-agent",
        description="Join ranks of a distributed servable to its msq-worker.",
    )
    parser.add_argument("--worker", type=_address, required=True, metavar="HOST:PORT",
                        help="the worker's --distributed-address")  # fmt: skip
    parser.add_argument("--rank-start", type=_count, default=0, metavar="R",
                        help="the first rank to run here (default 0)")  # fmt: skip
    parser.add_argument("--ranks", type=_positive, metavar="N",
                        help="how many ranks to run here (default: R to the last)")  # fmt: skip
    parser.add_argument("--device", default="cpu",
                        help="cpu, or one device per rank: gpu:0,1, ascend:0-7")  # fmt: skip
    parser.add_argument("--model-files", type=Path, nargs="+", metavar="F",
                        help="each local rank's model file, in rank order")  # fmt: skip
    parser.add_argument("--threads", type=_positive, help="MindSpore CPU threads per rank")
    parser.add_argument("--wait-worker-s", type=_positive, default=30, metavar="S",
                        help="seconds to wait for the worker to answer (default 30)")  # fmt: skip
    parser.add_argument("--dec-key-file", type=Path, metavar="PATH",
                        help="key file of encrypted model files (16, 24 or 32 bytes)")  # fmt: skip
    parser.add_argument("--dec-mode", choices=DEC_MODES, default=DEFAULT_DEC_MODE)
    add_log_level(parser, default="WARNING")
    return parser.parse_args(argv)


def query_rank_size(worker: str, timeout_s: float) -> int:
    """How many ranks the worker's servable has; AgentError if it does not answer."""
    context: zmq.Context[Any] = zmq.Context()
    sock = transport.dealer(context, worker)
    try:
        sock.send_multipart(transport.frames_of(AgentQuery()))
        until = time.monotonic() + timeout_s
        while (left := until - time.monotonic()) > 0:
            if not sock.poll(round(left * 1000)):
                break
            try:
                message = transport.message_of(sock.recv_multipart(copy=False))
            except WireError:
                continue
            if isinstance(message, AgentRanks):
                return message.rank_size
        raise AgentError(f"the worker at {worker} did not answer in {timeout_s:g} s")
    finally:
        sock.close(linger=0)
        context.term()


def plan_ranks(args: argparse.Namespace, rank_size: int) -> list[tuple[int, str, Path | None]]:
    """(rank, device, model file) of each local rank; AgentError for an impossible request."""
    from msq.launcher.devices import parse_devices, worker_device  # noqa: PLC0415

    start = args.rank_start
    if start >= rank_size:
        raise AgentError(
            f"--rank-start {start}: the worker's servable has ranks 0..{rank_size - 1}"
        )
    count = args.ranks if args.ranks is not None else rank_size - start
    if start + count > rank_size:
        raise AgentError(
            f"ranks {start}..{start + count - 1} are not all ranks of the worker's servable "
            f"(0..{rank_size - 1})"
        )
    try:
        devices = [worker_device(device) for device in parse_devices(args.device)]
    except ValueError as exc:
        raise AgentError(str(exc)) from None
    files: list[Path | None] = [None] * count
    if args.model_files is not None:
        if len(args.model_files) != count:
            raise AgentError(
                f"--model-files lists {len(args.model_files)} files for {count} local ranks: "
                "give one per rank"
            )
        missing = [str(path) for path in args.model_files if not path.is_file()]
        if missing:
            raise AgentError(f"model files {', '.join(missing)} do not exist")
        files = [path.resolve() for path in args.model_files]
    return [(args.rank_start + k, devices[k % len(devices)], files[k]) for k in range(count)]


def run_ranks(args: argparse.Namespace, ranks: list[tuple[int, str, Path | None]],
              stopping: threading.Event) -> int:  # fmt: skip
    """Run the local ranks until stopped (0) or refused (1); rejoin after a group restart."""
    threads = args.threads or default_threads(len(ranks))
    options = ["--threads", str(threads), *log_options(args)]
    options += processes.decryption_args(args.dec_key_file, args.dec_mode)
    while not stopping.is_set():
        children = [processes.start_rank(args.worker, rank, device, model_file, options)
                    for rank, device, model_file in ranks]  # fmt: skip
        code = _wait_any(children, stopping)
        processes.stop(children)
        if code == 1:
            return 1
        if not stopping.is_set():
            print("msq-agent: the group restarts: joining again", file=sys.stderr, flush=True)
            stopping.wait(1.0)
    return 0


def _wait_any(children: list[subprocess.Popen[bytes]], stopping: threading.Event) -> int | None:
    while not stopping.wait(0.2):
        for child in children:
            if (code := child.poll()) is not None:
                return code
    return None


def main(argv: list[str] | None = None) -> int:
    """Run `msq-agent`; 1 with a message when the worker refuses or cannot be reached."""
    args = parse_args(argv)
    setup_logging("msq-agent", args.log_level, args.log_format)
    stopping = threading.Event()
    on_stop_signals(stopping.set)
    try:
        if args.dec_key_file is not None:
            read_key_file(args.dec_key_file, args.dec_mode)  # its errors now, not per rank
        ranks = plan_ranks(args, query_rank_size(args.worker, args.wait_worker_s))
    except (AgentError, KeyFileError) as exc:
        print(f"msq-agent: {exc}", file=sys.stderr, flush=True)
        return 1
    return run_ranks(args, ranks, stopping)


if __name__ == "__main__":
    sys.exit(main())
