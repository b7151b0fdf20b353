"""msq across "hosts": broker(s), a worker, a gRPC gateway and a client each in their own Linux
network namespace, joined by veth links on 198.18.0.0/24 (`tests.integration.netns`), CURVE on
every broker connection. Skipped where namespaces cannot be made (not root, no `ip netns`)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from msq.launcher.keys import generate
from msq.security import STANDARD_PAIRS, serve_curve_options
from tests.gateways.grpc_processes import gateway
from tests.integration.netns import Network, unavailable
from tests.processes import EXAMPLES, REPO, Proc, broker, start_all, stop_all, worker

WHY_NOT = unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"multi-host test: {WHY_NOT}")

FRONTEND_PORT, BACKEND_PORT, GRPC_PORT = 5600, 5601, 5500


@pytest.fixture(scope="module")
def curve() -> dict[str, list[str]]:
    """The CURVE options of broker, worker and gateway (the standard key set)."""
    keys = Path(tempfile.mkdtemp(prefix="msq-multihost-keys-"))
    generate(keys, STANDARD_PAIRS)
    return serve_curve_options(keys)


class Deployment:
    """Brokers, one worker, one gRPC gateway, each on its own host, and a client host."""

    def __init__(self, net: Network, brokers: list[str], curve: dict[str, list[str]]) -> None:
        self.net, self.brokers, self.curve = net, brokers, curve
        self.frontends = [f"tcp://{net.address(b)}:{FRONTEND_PORT}" for b in brokers]
        backends = [f"tcp://{net.address(b)}:{BACKEND_PORT}" for b in brokers]
        self.grpc = f"{net.address('gateway')}:{GRPC_PORT}"
        self.procs: dict[str, Proc] = {
            host: net.on(host, broker(frontend, backend, *curve["broker"]))
            for host, frontend, backend in zip(brokers, self.frontends, backends, strict=True)
        }
        self.procs["worker"] = net.on(
            "worker", worker(",".join(backends), "add", EXAMPLES, *curve["worker"])
        )
        gateway_proc, _ = gateway(",".join(self.frontends), *curve["gateway"])
        listen = gateway_proc.args.index("--listen") + 1
        gateway_proc.args[listen] = self.grpc
        self.procs["gateway"] = net.on("gateway", gateway_proc)

    def start(self) -> None:
        """Start every process and wait until each broker has the worker registered."""
        start_all(self.procs.values())
        deadline = time.monotonic() + 60.0
        while True:
            status = self.status()
            workers = json.loads(status.stdout)["workers"] if status.stdout else []
            if len(workers) == len(self.brokers):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"workers never registered everywhere: {status.stdout}")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_all(self.procs.values())

    def status(self, *, keys: bool = True) -> subprocess.CompletedProcess[str]:
        """`msq status --json` for every broker, run on the client host."""
        command = ["msq", "status", "--json", "--timeout", "3"]
        for frontend in self.frontends:
            command += ["--broker", frontend]
        if keys:
            command += self.curve["gateway"]
        return subprocess.run(
            ["ip", "netns", "exec", self.net.namespace("client"), *command],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def client(self, requests: int, concurrency: int) -> subprocess.Popen[str]:
        """Requests with known answers through the gateway, from the client host."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.net.namespace("client"), sys.executable, "-m",
             "tests.integration.netns_client", self.grpc, "--requests", str(requests),
             "--concurrency", str(concurrency)],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip


@pytest.fixture
def one_broker(curve: dict[str, list[str]]) -> Iterator[Deployment]:
    with Network(["broker", "worker", "gateway", "client"]) as net:
        deployment = Deployment(net, ["broker"], curve)
        deployment.start()
        try:
            yield deployment
        finally:
            deployment.stop()


def test_across_hosts_with_curve_answers_are_correct(one_broker: Deployment) -> None:
    # The broker binds a non-loopback address with CURVE on: no refusal, no warning.
    assert "INSECURE" not in one_broker.procs["broker"].log()
    status = one_broker.status()
    assert status.returncode == 0, status.stderr
    workers = json.loads(status.stdout)["workers"]
    assert [w["pid"] for w in workers] == [one_broker.procs["worker"].pid]
    client = one_broker.client(requests=20, concurrency=2)
    out, _ = client.communicate(timeout=120)
    assert client.returncode == 0
    assert json.loads(out.splitlines()[-1]) == {"ok": 20, "wrong": 0, "failed": {}}
    # A process without a key, on the same network, gets nothing from the broker.
    plaintext = one_broker.status(keys=False)
    assert plaintext.returncode == 1
    (view,) = json.loads(plaintext.stdout)["brokers"]
    assert (view["answered"], view["error"]) == (False, "no answer within 3 s")


def test_one_brokers_host_taken_down_under_load_fails_no_request(
    curve: dict[str, list[str]],
) -> None:
    with Network(["broker", "broker2", "worker", "gateway", "client"]) as net:
        deployment = Deployment(net, ["broker", "broker2"], curve)
        deployment.start()
        try:
            client = deployment.client(requests=300, concurrency=4)
            assert client.stdout is not None
            assert client.stdout.readline() == "started\n"
            net.take_down("broker2")
            out, _ = client.communicate(timeout=300)
            assert json.loads(out.splitlines()[-1]) == {"ok": 300, "wrong": 0, "failed": {}}
            status = deployment.status()
            (kept,) = [b for b in json.loads(status.stdout)["brokers"] if b["answered"]]
            assert kept["address"] == deployment.frontends[0]
        finally:
            deployment.stop()
