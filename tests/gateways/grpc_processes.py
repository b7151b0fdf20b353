"""The processes behind the gRPC gateway tests: a broker, workers for the examples (`add`,
`digits`) and the test servables (`echo`, `slow`), and a plaintext gateway with a metrics port —
started once per test session by the `grpc_stack` fixture (tests/conftest.py) and shared by
every module that asks for it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tests.processes import (
    EXAMPLES,
    Proc,
    broker,
    endpoint,
    free_port,
    start_served,
    stop_all,
    worker,
)

SERVABLES = Path(__file__).resolve().parent / "servables"
#: The plaintext gateway's message limit; small, so that the over-limit test stays cheap.
MAX_MSG_MB = 2


def gateway(frontend: str, *extra: str, name: str = "grpc-gateway") -> tuple[Proc, str]:
    """A gateway process for the broker at `frontend` (not started), and its address."""
    address = f"127.0.0.1:{free_port()}"
    args = [sys.executable, "-m", "msq.gateways.grpc.cli", "--listen", address]
    return Proc(name, [*args, "--broker", frontend, *extra]), address


@dataclass
class GrpcStack:
    """The running processes and where to reach them."""

    frontend: str
    address: str  # the plaintext gateway's HOST:PORT
    procs: list[Proc]
    metrics_port: int  # the gateway's /metrics

    @property
    def gateway(self) -> Proc:
        return self.procs[-1]

    def stop(self) -> None:
        stop_all(self.procs)


def start_grpc_stack() -> GrpcStack:
    """Start the broker, workers and plaintext gateway (in parallel) and wait until served."""
    frontend, backend, metrics_port = endpoint(), endpoint(), free_port()
    gateway_proc, address = gateway(
        frontend, "--max-msg-mb", str(MAX_MSG_MB), "--metrics-port", str(metrics_port)
    )
    procs = [
        broker(frontend, backend),
        worker(backend, "add", EXAMPLES),
        worker(backend, "digits", EXAMPLES),
        worker(backend, "echo", SERVABLES),
        worker(backend, "slow", SERVABLES),
        gateway_proc,
    ]
    procs = start_served(procs, frontend, {"add": 1, "digits": 1, "echo": 1, "slow": 1})
    return GrpcStack(frontend, address, procs, metrics_port)
