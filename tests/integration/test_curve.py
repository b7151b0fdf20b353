"""CURVE end to end with real processes: a broker with CURVE on, a worker and both gateways
with authorized keys (answers correct), a worker and a gateway with an unlisted key (refused:
never registered, requests fail as "broker not reachable"), `msq status` with and without keys;
and the refusal of a non-loopback bind without CURVE."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from msq.client import Client
from msq.proto.curve import CurveClient, load_public_key
from msq.security import curve_client
from tests.gateways.grpc_processes import gateway
from tests.gateways.rest_stack import post_json, rest_gateway
from tests.processes import (
    EXAMPLES,
    Proc,
    broker,
    broker_status,
    endpoint,
    free_port,
    start_served,
    stop_all,
    worker,
)

ADD_BODY = {"instances": {"x1": [[1.0, 1.0], [1.0, 1.0]], "x2": [[1.0, 1.0], [1.0, 2.0]]}}
ADD_ANSWER = {"instances": [{"y": [[2.0, 2.0], [2.0, 3.0]]}]}
REFUSED_KEY = (
    "refused this process's CURVE key (ZAP status 400): its public key is not in the broker's "
    "authorized-keys directory for this role (see docs/security.md)"
)


def client_keys(keys: Path, pair: Path) -> list[str]:
    """The CURVE options of a client with the key pair `pair` of the broker in `keys`."""
    return ["--curve-secret-key", str(pair), "--curve-server-key", str(keys / "broker.key")]


@dataclass
class Secured:
    keys: Path
    intruder: Path  # an unlisted key pair (.key_secret)
    frontend: str
    grpc: str  # the authorized gRPC gateway
    grpc_intruder: str
    rest_port: int
    procs: dict[str, Proc]

    @property
    def curve(self) -> CurveClient:
        """An authorized gateway's CURVE settings."""
        settings = curve_client(self.keys / "gateway.key_secret", self.keys / "broker.key")
        assert settings is not None
        return settings


@pytest.fixture(scope="module")
def secured() -> Iterator[Secured]:
    root = Path(tempfile.mkdtemp(prefix="msq-curve-"))
    keys, elsewhere = root / "keys", root / "elsewhere"
    for argv in ([str(keys)], [str(elsewhere), "--name", "intruder"]):
        subprocess.run(["msq", "keys", "generate", *argv], check=True, capture_output=True)
    intruder = elsewhere / "intruder.key_secret"
    frontend, backend = endpoint(), endpoint()
    broker_keys = [
        "--curve-secret-key", str(keys / "broker.key_secret"),
        "--curve-authorized-workers", str(keys / "authorized-workers"),
        "--curve-authorized-gateways", str(keys / "authorized-gateways"),
    ]  # fmt: skip
    good_worker = worker(backend, "add", EXAMPLES, *client_keys(keys, keys / "worker.key_secret"))
    bad_worker = worker(backend, "add", EXAMPLES, *client_keys(keys, intruder))
    bad_worker.name = "worker-intruder"
    grpc_proc, grpc = gateway(frontend, *client_keys(keys, keys / "gateway.key_secret"))
    bad_grpc_proc, bad_grpc = gateway(frontend, *client_keys(keys, intruder), name="intruder")
    rest_proc, rest_port = rest_gateway(
        frontend, "--workers", "1", *client_keys(keys, keys / "gateway.key_secret")
    )
    procs = {
        "broker": broker(frontend, backend, *broker_keys),
        "worker": good_worker,
        "worker-intruder": bad_worker,
        "grpc": grpc_proc,
        "grpc-intruder": bad_grpc_proc,
        "rest": rest_proc,
    }
    curve = curve_client(keys / "gateway.key_secret", keys / "broker.key")
    start_served(procs.values(), frontend, {"add": 1}, curve)
    yield Secured(keys, intruder, frontend, grpc, bad_grpc, rest_port, procs)
    stop_all(procs.values())


def test_authorized_gateways_and_worker_answer_correctly(secured: Secured) -> None:
    x = np.ones((2, 2), np.float32)
    with Client(secured.grpc, "add", "add_common") as client:
        (result,) = client.infer([{"x1": x, "x2": 2 * x}])
    assert isinstance(result, dict)
    np.testing.assert_array_equal(result["y"], 3 * x)
    connection = http.client.HTTPConnection("127.0.0.1", secured.rest_port, timeout=30)
    assert post_json(connection, "/model/add:add_common", ADD_BODY) == (200, ADD_ANSWER)


def test_a_gateway_with_an_unlisted_key_cannot_submit(secured: Secured) -> None:
    x = np.ones((2, 2), np.float32)
    with Client(secured.grpc_intruder, "add", "add_common") as client:
        result = client.infer([{"x1": x, "x2": x}], timeout=30)
    assert result == {"error": f"no broker reachable at {secured.frontend} for 10 s"}
    # The gateway's log says why, once.
    log = secured.procs["grpc-intruder"].log_path.read_text()
    assert [line.split(": ", 1)[1] for line in log.splitlines() if " ERROR " in line] == [
        f"the broker at {secured.frontend} {REFUSED_KEY}"
    ]
    intruder_key = load_public_key(secured.intruder).decode()
    assert refusals(secured, "gateway", intruder_key) == [
        f"refused a gateway connection: CURVE key {intruder_key} is not authorized; "
        "further attempts with this key are not logged"
    ]


def refusals(secured: Secured, role: str, key: str) -> list[str]:
    """The broker's log lines about refusing `key` to a `role` (both intruders use one key)."""
    log = secured.procs["broker"].log_path.read_text(errors="replace")
    about = f"refused a {role} connection: CURVE key {key}"
    return [line.split(": ", 1)[1] for line in log.splitlines() if about in line]


def wait_for(condition: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_a_worker_with_an_unlisted_key_never_registers_and_is_logged_once(
    secured: Secured,
) -> None:
    intruder = secured.procs["worker-intruder"]
    # It retries: each re-registration is a new connection, refused by ZAP again.
    wait_for(lambda: intruder.log_path.read_text().count("registering again") >= 2)
    status = broker_status(secured.frontend, secured.curve)
    assert status is not None
    assert [w.pid for w in status.workers] == [secured.procs["worker"].pid]
    # It says why, and does not spin or flood its own log: one line of each per registration.
    lines = intruder.log_path.read_text().splitlines()
    registrations = 1 + sum("registering again" in line for line in lines)
    dropping = [line for line in lines if "is not taking messages" in line]
    assert 2 <= len(dropping) <= registrations
    refused = [line for line in lines if line.endswith(REFUSED_KEY)]
    assert 2 <= len(refused) <= registrations
    assert all(" ERROR msq.proto.curve: the broker at tcp://" in line for line in refused)
    key = load_public_key(secured.intruder).decode()
    assert refusals(secured, "worker", key) == [
        f"refused a worker connection: CURVE key {key} is not authorized; "
        "further attempts with this key are not logged"
    ]


def msq_status(frontend: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["msq", "status", "--json", "--timeout", "1.5", "--broker", frontend, *options],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_msq_status_needs_an_authorized_key(secured: Secured) -> None:
    keyed = msq_status(
        secured.frontend, *client_keys(secured.keys, secured.keys / "gateway.key_secret")
    )
    assert keyed.returncode == 0, keyed.stderr
    pids = [w["pid"] for w in json.loads(keyed.stdout)["workers"]]
    assert pids == [secured.procs["worker"].pid]
    plaintext = msq_status(secured.frontend)
    assert plaintext.returncode == 1
    (view,) = json.loads(plaintext.stdout)["brokers"]
    assert (view["answered"], view["error"]) == (False, "no answer within 1.5 s")


# ------------------------------------------------------------------ binding beyond loopback


def test_a_non_loopback_bind_without_curve_refuses_to_start() -> None:
    frontend = f"tcp://0.0.0.0:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "msq.broker.cli", "--frontend", frontend],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(
        f"msq-broker: error: refusing to bind {frontend} without CURVE: anyone who reaches it"
    )


def test_allow_insecure_starts_and_warns() -> None:
    frontend = f"tcp://0.0.0.0:{free_port()}"
    proc = broker(frontend, endpoint(), "--allow-insecure").start()
    try:
        proc.wait_ready(timeout_s=60)
        warnings = [line for line in proc.log().splitlines() if " WARNING " in line]
        assert len(warnings) == 1
        assert re.search(
            rf"msq-broker WARNING msq.security: INSECURE \(--allow-insecure\): {frontend} "
            "bound without CURVE; any process that reaches it can register as a worker",
            warnings[0],
        )
    finally:
        assert proc.stop() == 0
