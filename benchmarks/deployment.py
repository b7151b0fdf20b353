"""The msq deployment the chaos and soak tools drive: one they start with `msq serve`, or a
running one they attach to (its launcher's pid and the gateways' addresses)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import psutil

from msq.benchmarks import procs
from msq.benchmarks.faults import msq_processes
from msq.benchmarks.scenarios import EXAMPLE_SERVABLES

#: What `msq serve` prints once every process it started serves.
SERVE_READY = "msq ready:"
#: The servable the probes call (`msq.benchmarks.probes`).
SERVABLE = "add"


@dataclass(slots=True)
class Deployment:
    """A running `msq serve`: its launcher process and where its gateways listen."""

    launcher: psutil.Process
    grpc: str  # HOST:PORT
    rest: str  # http://HOST:PORT
    server: procs.Server | None = None  # set when this tool started it

    def processes(self) -> dict[str, psutil.Process]:
        """msq's processes now, by name (see `msq.benchmarks.faults.msq_processes`)."""
        return msq_processes(self.launcher)

    def stop(self) -> None:
        """Stop the deployment if this tool started it (continuing stopped processes first)."""
        if self.server is None:
            return
        for process in self.processes().values():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()
        procs.stop([self.server], grace_s=15.0)


def start_serve(
    log_dir: Path, workers: int = 2, servable_dir: Path = EXAMPLE_SERVABLES
) -> Deployment:
    """`msq serve servable_dir --servable add --workers N` on free loopback ports."""
    grpc_address = f"127.0.0.1:{procs.free_port()}"
    rest_address = f"127.0.0.1:{procs.free_port()}"
    argv = [
        "msq",
        "serve",
        str(servable_dir),
        "--servable",
        SERVABLE,
        "--workers",
        str(workers),
        "--grpc",
        grpc_address,
        "--rest",
        rest_address,
        "--broker-frontend",
        f"tcp://127.0.0.1:{procs.free_port()}",
        "--broker-backend",
        f"tcp://127.0.0.1:{procs.free_port()}",
    ]
    server = procs.start("msq-serve", argv, log_dir, ready_line=SERVE_READY)
    try:
        procs.wait_ready([server], timeout_s=240.0)
    except BaseException:
        procs.stop([server])
        raise
    launcher = psutil.Process(server.popen.pid)
    return Deployment(launcher, grpc_address, f"http://{rest_address}", server)


def attach(launcher_pid: int, grpc_address: str, rest_url: str) -> Deployment:
    """A running `msq serve` (process `launcher_pid`); the tool will not stop it."""
    return Deployment(psutil.Process(launcher_pid), grpc_address, rest_url.rstrip("/"))
