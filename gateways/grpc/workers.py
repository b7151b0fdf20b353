"""`msq-grpc-gateway --grpc-workers N`: N gateway processes serving one port.

With N > 1 the command becomes a supervising parent: it starts N children (the same command,
marked by `CHILD_ENV`), each a whole gateway with its own broker link, listening on the same
HOST:PORT with SO_REUSEPORT, so the kernel spreads connections over them. The parent restarts
a child that dies (logged, with `msq.launcher.supervisor`'s back-off), passes SIGTERM on for a
graceful stop, and exits with 1 when a child fails to start. With `--metrics-port`, the children
count into a private prometheus-client multiprocess folder and the parent serves their sum, so
one scrape sees every child (as the REST gateway's gunicorn workers do).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

from msq.launcher.supervisor import Child, Supervisor
from msq.metrics import ready_detail, start_exporter
from msq.process import announce_ready, on_stop_signals

log = logging.getLogger("msq.gateways.grpc")

#: Set in a child's environment: it is one of a parent's gateway processes.
CHILD_ENV = "MSQ_GRPC_WORKER"
#: prometheus-client's multiprocess folder variable.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds each child may take to print its ready line.
START_TIMEOUT_S = 60.0


def is_child() -> bool:
    """Whether this process is a child of a `--grpc-workers` parent."""
    return bool(os.environ.get(CHILD_ENV))


def check_listen(listen: str, count: int) -> None:
    """ValueError unless `count` processes can share `listen` (a HOST:PORT with a fixed port)."""
    if count == 1:
        return
    port = listen.rpartition(":")[2]
    if listen.startswith("unix:") or not port.isdigit() or int(port) == 0:
        raise ValueError(f"{count} gateway processes need a fixed HOST:PORT, not {listen!r}")


def children(count: int, argv: Sequence[str], metrics_dir: Path | None) -> list[Child]:
    """The `count` children: this command again, marked as children."""
    env = {**os.environ, CHILD_ENV: "1"}
    if metrics_dir is not None:
        env[MULTIPROC_ENV] = str(metrics_dir)
    command = [sys.executable, "-m", "msq.gateways.grpc.cli", *argv]
    return [
        Child(f"grpc #{index}", command, {"kind": "grpc"}, env=env) for index in range(1, count + 1)
    ]


def supervise(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run `args.grpc_workers` children of the command `argv` until SIGINT or SIGTERM; 1 when
    one of them fails to start."""
    metrics_dir = None
    if args.metrics_port is not None:
        metrics_dir = Path(tempfile.mkdtemp(prefix="msq-grpc-metrics-"))
    supervisor = Supervisor()
    on_stop_signals(supervisor.stop)
    try:
        try:
            supervisor.start(
                *children(args.grpc_workers, argv, metrics_dir), timeout_s=START_TIMEOUT_S
            )
        except RuntimeError as exc:
            log.error("start-up failed: %s", exc)
            return 1
        address = None
        if metrics_dir is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, str(metrics_dir))  # type: ignore[no-untyped-call]
            address = start_exporter(args, registry)
        detail = f"listening on {args.listen} ({args.grpc_workers} processes)"
        announce_ready("msq-grpc-gateway", ready_detail(detail, address))
        supervisor.watch()
        log.info("stopping")
        return 0
    finally:
        supervisor.shutdown()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
