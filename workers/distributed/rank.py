"""One rank of a distributed servable: joins the worker, forms MindSpore's cluster, runs calls.

    python -m msq.workers.distributed.rank --worker tcp://HOST:PORT --rank R [--device D]
        [--threads N] [--model-file F] [--dec-key-file F --dec-mode M]

Started by the worker for its local ranks and by `msq-agent`. It sends `AgentJoin`; on
`AgentPlan` it sets MindSpore's cluster variables, joins the cluster (`communication.init`),
loads its MindIR file and says `AgentLoaded`; then it runs each `AgentCall` (the graph's own
collectives talk to the other ranks) and answers `AgentOutputs` (outputs from the last rank
only). It heartbeats while idle and exits 1 when refused, when the worker is silent for
`--liveness-s`, or when it cannot load; the worker tears the group down and starts it again.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from msq.process import add_log_level, announce_ready, setup_logging
from msq.proto import transport
from msq.proto.codec import from_wire, to_wire
from msq.proto.messages import (
    AgentCall,
    AgentJoin,
    AgentLoaded,
    AgentOutputs,
    AgentPlan,
    AgentRefused,
    Heartbeat,
    Message,
)
from msq.proto.wire import WireError
from msq.workers.decryption import DEC_MODES, DEFAULT_DEC_MODE, read_key_file
from msq.workers.device import parse_device
from msq.workers.distributed.processes import REJOIN_EXIT, die_with_parent

logger = logging.getLogger("msq.workers.distributed.rank")

Socket = zmq.Socket[Any]

HEARTBEAT_S = 0.5


class RankExitError(Exception):
    """The rank process must exit with this message: 1, or `REJOIN_EXIT` when `rejoin`."""

    def __init__(self, message: str, *, rejoin: bool = False) -> None:
        super().__init__(message)
        self.rejoin = rejoin


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of a rank process."""
    parser = argparse.ArgumentParser(prog="msq-rank", description=__doc__.splitlines()[0])
    parser.add_argument("--worker", required=True, help="the worker's agent endpoint")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model-file", type=Path)
    parser.add_argument("--dec-key-file", type=Path)
    parser.add_argument("--dec-mode", choices=DEC_MODES, default=DEFAULT_DEC_MODE)
    parser.add_argument("--liveness-s", type=float, default=3.0)
    parser.add_argument("--join-timeout-s", type=float, default=30.0)
    add_log_level(parser, default="WARNING")
    return parser.parse_args(argv)


def _receive(sock: Socket, timeout_s: float) -> Message | None:
    if not sock.poll(round(timeout_s * 1000)):
        return None
    try:
        return transport.message_of(sock.recv_multipart(copy=False))
    except WireError as exc:
        logger.warning("dropped a malformed message from the worker: %s", exc)
        return None


def _send(sock: Socket, message: Message) -> None:
    sock.send_multipart(transport.frames_of(message), copy=False)


def _join(sock: Socket, args: argparse.Namespace) -> AgentPlan:
    model_file = str(args.model_file.resolve()) if args.model_file else ""
    _send(sock, AgentJoin(args.rank, os.getpid(), model_file))
    until = time.monotonic() + args.join_timeout_s
    while time.monotonic() < until:
        match _receive(sock, 0.25):
            case AgentPlan() as plan:
                return plan
            case AgentRefused(reason):
                raise RankExitError(
                    f"the worker at {args.worker} refused rank {args.rank}: {reason}"
                )
    raise RankExitError(
        f"the worker at {args.worker} did not answer in {args.join_timeout_s:.0f} s"
    )


def _await_scheduler(host: str, port: int, timeout_s: float) -> None:
    """Wait until MindSpore's scheduler listens: a rank that tries to join the cluster before
    it does retries for tens of seconds (measured: ~25 s)."""
    until = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > until:
                raise RankExitError(
                    f"MindSpore's scheduler at {host}:{port} did not listen in {timeout_s:.0f} s",
                    rejoin=True,
                ) from None
            time.sleep(0.1)


def _load(plan: AgentPlan, args: argparse.Namespace, host: str) -> Any:
    """Join MindSpore's cluster and load the rank's model; the callable graph."""
    scheduler_host = plan.scheduler_host if plan.scheduler_host not in ("", "0.0.0.0") else host
    os.environ.update({
        "MS_SCHED_HOST": scheduler_host, "MS_SCHED_PORT": str(plan.scheduler_port),
        "MS_WORKER_NUM": str(plan.rank_size), "MS_ROLE": "MS_WORKER",
        "MS_NODE_ID": str(args.rank),
    })  # fmt: skip
    import mindspore as ms  # noqa: PLC0415 - after the cluster's variables are set
    from mindspore import nn  # noqa: PLC0415
    from mindspore.communication import init  # noqa: PLC0415

    from msq.workers.device import configure_mindspore  # noqa: PLC0415

    configure_mindspore(parse_device(args.device), args.threads)
    path = Path(plan.model_file)
    if not path.is_file():
        raise RankExitError(f"model file {path} of rank {args.rank} does not exist")
    keys: dict[str, object] = {}
    if args.dec_key_file is not None:
        decryption = read_key_file(args.dec_key_file, args.dec_mode)
        keys = {"dec_key": decryption.key, "dec_mode": decryption.mode}
    _await_scheduler(scheduler_host, plan.scheduler_port, args.join_timeout_s)
    init()
    try:
        return nn.GraphCell(ms.load(str(path), **keys))
    except (RuntimeError, ValueError, OSError) as exc:
        raise RankExitError(f"cannot load model file {path} of rank {args.rank}: {exc}") from exc


def _call(graph: Any, call: AgentCall, last: bool) -> AgentOutputs:
    import mindspore as ms  # noqa: PLC0415 - imported by `_load` already

    arrays = [from_wire(call.inputs[str(k)]) for k in range(len(call.inputs))]
    try:
        result = graph(*(ms.from_numpy(array) for array in arrays))  # lent, not copied
    except (RuntimeError, ValueError, TypeError) as exc:
        return AgentOutputs(call.call_id, {}, f"{type(exc).__name__}: {exc}")
    if not last:
        return AgentOutputs(call.call_id, {})
    outputs = result if isinstance(result, (tuple, list)) else (result,)
    return AgentOutputs(
        call.call_id, {str(k): to_wire(output.asnumpy()) for k, output in enumerate(outputs)}
    )


def serve(sock: Socket, args: argparse.Namespace) -> None:
    """Join, load, then run calls until refused or the worker goes silent."""
    import mindspore  # noqa: F401, PLC0415 - seconds: while the scheduler starts too

    plan = _join(sock, args)
    host = args.worker.removeprefix("tcp://").rpartition(":")[0]
    try:
        graph = _load(plan, args, host)
    except RankExitError as exc:
        _send(sock, AgentLoaded(args.rank, str(exc)))
        raise
    _send(sock, AgentLoaded(args.rank))
    # On the stderr it shares with `msq-agent`: what a supervisor of the agent waits for.
    announce_ready("msq-rank", f"rank {args.rank} of {plan.rank_size} in the cluster, loaded")
    last = args.rank == plan.rank_size - 1
    heard = sent = time.monotonic()
    while True:
        message = _receive(sock, HEARTBEAT_S)
        now = time.monotonic()
        if message is not None:
            heard = now
        match message:
            case AgentCall():
                _send(sock, _call(graph, message, last))
                sent = time.monotonic()
            case AgentRefused(reason):
                raise RankExitError(f"rank {args.rank} leaves: {reason}", rejoin=True)
        if now - heard > args.liveness_s:
            raise RankExitError(
                f"the worker at {args.worker} is silent: rank {args.rank} leaves", rejoin=True
            )
        if now - sent >= HEARTBEAT_S:
            _send(sock, Heartbeat())
            sent = now


def main(argv: list[str] | None = None) -> int:
    """Run one rank; 1 when refused, unable to load, or the worker went away."""
    die_with_parent()
    args = parse_args(argv)
    setup_logging(f"msq-rank-{args.rank}", args.log_level, args.log_format)
    context: zmq.Context[Any] = zmq.Context()
    sock = transport.dealer(context, args.worker)
    try:
        serve(sock, args)
    except RankExitError as exc:
        print(f"msq-agent: {exc}", file=sys.stderr, flush=True)
        sock.close(linger=200)
        # Not a normal exit: MindSpore's cluster would wait for the other ranks at exit.
        os._exit(REJOIN_EXIT if exc.rejoin else 1)
    sock.close(linger=200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
