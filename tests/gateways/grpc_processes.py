"""The processes behind the gRPC gateway tests: a broker, workers for `add` and the test
servables (`echo`, `slow`), and a plaintext gateway — started once per test session, shared by
every module that asks for the `grpc_stack` fixture."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import (
    EXAMPLES,
    Proc,
    broker,
    endpoint,
    free_port,
    start_all,
    stop_all,
    wait_served,
    worker,
)

SERVABLES = Path(__file__).resolve().parent / "servables"
#: The plaintext gateway's message limit; small, so that the over-limit test stays cheap.
MAX_MSG_MB = 2


def gateway(frontend: str, *extra: str, name: str = "grpc-gateway") -> tuple[Proc, str]:
    """A gateway process for the broker at `frontend` (not started), and its address."""
    address = f"127.0.0.1:{free_port()}"
    args = [sys.executable, "-m", "msq.gateways.grpc_cli", "--listen", address]
    return Proc(name, [*args, "--broker", frontend, *extra]), address


@dataclass
class GrpcStack:
    """The running processes and where to reach them."""

    frontend: str
    address: str  # the plaintext gateway's HOST:PORT
    procs: list[Proc]

    @property
    def gateway(self) -> Proc:
        return self.procs[-1]


_stack: GrpcStack | None = None


def _start() -> GrpcStack:
    frontend, backend = endpoint(), endpoint()
    gateway_proc, address = gateway(frontend, "--max-msg-mb", str(MAX_MSG_MB))
    procs = start_all(
        [
            broker(frontend, backend),
            worker(backend, "add", EXAMPLES),
            worker(backend, "echo", SERVABLES),
            worker(backend, "slow", SERVABLES),
            gateway_proc,
        ]
    )
    try:
        wait_served(frontend, {"add": 1, "echo": 1, "slow": 1})
    except RuntimeError:
        stop_all(procs)
        raise
    return GrpcStack(frontend, address, procs)


def _stop() -> None:
    global _stack  # noqa: PLW0603 - the one shared stack of the session
    if _stack is not None:
        stop_all(_stack.procs)
        _stack = None


@pytest.fixture(scope="module")
def grpc_stack(request: pytest.FixtureRequest) -> GrpcStack:
    """The shared stack; started by the first module that uses it, stopped with the session."""
    global _stack  # noqa: PLW0603 - the one shared stack of the session
    if _stack is None:
        _stack = _start()
        request.session.addfinalizer(_stop)
    return _stack
