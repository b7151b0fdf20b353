"""`msq serve` over ipc, with CURVE, two brokers and two gRPC gateway processes: its own
processes reach the brokers through Unix sockets in a private folder (mode 0700, removed at
stop), the brokers' tcp endpoints still answer status queries, and requests are answered
through the gateway."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest

from msq.client import Client
from msq.launcher.cli import main
from msq.security import serve_gateway_curve
from tests.integration.launching import Serving, serve
from tests.processes import EXAMPLES, broker_status


@dataclass
class Deployment:
    serving: Serving
    keys: Path

    def commands(self, program: str) -> list[list[str]]:
        """The command lines of the launcher's `program` children."""
        return [
            child.cmdline() for child in self.children() if program in " ".join(child.cmdline()[:2])
        ]

    def children(self, pid: int | None = None) -> list[psutil.Process]:
        """The children of process `pid` (the launcher's by default)."""
        return psutil.Process(pid or self.serving.launcher.pid).children()

    def runtime_dir(self) -> Path:
        """The folder of the first broker's ipc frontend."""
        (first, _) = self.commands("msq-broker")
        ipc = first[first.index("--frontend") + 1].split(",")[0]
        assert ipc.startswith("ipc://")
        return Path(ipc.removeprefix("ipc://")).parent


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    keys = tmp_path_factory.mktemp("keys")
    assert main(["keys", "generate", str(keys)]) == 0
    serving = serve(
        EXAMPLES, "--servable", "add", "--no-rest", "--brokers", "2", "--curve-dir", str(keys),
        "--grpc-workers", "2",
    )  # fmt: skip
    yield Deployment(serving, keys)
    serving.stop()


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_brokers_bind_ipc_in_a_private_folder_and_their_tcp_endpoints(
    deployment: Deployment,
) -> None:
    folder = deployment.runtime_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    sockets = sorted(path.name for path in folder.iterdir() if path.is_socket())
    assert sockets == [f"broker-{n}-{role}" for n in (1, 2) for role in ("backend", "frontend")]
    frontend = deployment.serving.frontend
    port = int(frontend.rpartition(":")[2])
    binds = [option(command, "--frontend") for command in deployment.commands("msq-broker")]
    assert binds == [
        f"ipc://{folder}/broker-1-frontend,{frontend}",
        f"ipc://{folder}/broker-2-frontend,tcp://127.0.0.1:{port + 2}",
    ]


def test_workers_and_gateway_connect_over_ipc(deployment: Deployment) -> None:
    folder = deployment.runtime_dir()
    (worker,) = deployment.commands("msq-worker")
    assert option(worker, "--broker") == (
        f"ipc://{folder}/broker-1-backend,ipc://{folder}/broker-2-backend"
    )
    (gateway,) = [c for c in deployment.children() if "msq-grpc-gateway" in c.cmdline()[1]]
    assert option(gateway.cmdline(), "--grpc-workers") == "2"
    frontends = f"ipc://{folder}/broker-1-frontend,ipc://{folder}/broker-2-frontend"
    processes = [gateway, *deployment.children(gateway.pid)]
    assert [option(process.cmdline(), "--broker") for process in processes] == [frontends] * 3
    result = Client(deployment.serving.grpc, "add", "add_common", timeout=30).infer(
        {"x1": np.ones((2, 2), np.float32), "x2": np.full((2, 2), 2.0, np.float32)}
    )
    assert isinstance(result, list)
    np.testing.assert_array_equal(result[0]["y"], np.full((2, 2), 3.0, np.float32))


def test_status_over_tcp_with_curve_sees_the_worker_on_each_broker(
    deployment: Deployment,
) -> None:
    port = int(deployment.serving.frontend.rpartition(":")[2])
    curve = serve_gateway_curve(deployment.keys)
    for frontend in (deployment.serving.frontend, f"tcp://127.0.0.1:{port + 2}"):
        status = broker_status(frontend, curve)
        assert status is not None, frontend
        assert [(w.servable, w.device) for w in status.workers] == [("add", "cpu")]
    assert broker_status(deployment.serving.frontend) is None  # without a key: refused


def test_stopping_removes_the_private_folder(deployment: Deployment) -> None:
    folder = deployment.runtime_dir()
    assert deployment.serving.launcher.stop(timeout_s=60) == 0
    assert not folder.exists()
