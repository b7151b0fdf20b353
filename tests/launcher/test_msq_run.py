"""`msq run` runs a MindSpore Serving-style start script (tests/launcher/scripts/serving_server.py)
unmodified: its workers, its unix: gRPC address, its queue limit, MindSpore Serving's client
conventions, and a stop by SIGTERM that takes every process with it."""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest

from msq.client import Client
from msq.proto.messages import Status
from tests.processes import EXAMPLES, Proc, broker_status, endpoint, free_port

SCRIPT = Path(__file__).with_name("scripts") / "serving_server.py"
ONES = {"x1": np.ones((2, 2), np.float32), "x2": np.ones((2, 2), np.float32)}
START_S = 300.0  # four workers load MindSpore on a shared machine


@dataclass
class Served:
    proc: Proc
    frontend: str
    grpc: str
    rest: str


def msq_run(config: Path, script: Path, *args: str) -> Proc:
    msq = str(Path(sys.executable).with_name("msq"))
    return Proc("msq-run", [msq, "run", "--config", str(config), str(script), *args])


def write_config(folder: Path, frontend: str) -> Path:
    config = folder / "msq.toml"
    config.write_text(
        f'[broker]\nfrontend = "{frontend}"\nbackend = "{endpoint()}"\n'
        '[rest]\nworkers = 1\n[log]\nlevel = "WARNING"\n'
    )
    return config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("msq-run")
    frontend = endpoint()
    grpc, rest = f"unix:{folder / 'grpc.sock'}", f"127.0.0.1:{free_port()}"
    proc = msq_run(write_config(folder, frontend), SCRIPT, str(EXAMPLES), grpc, rest).start()
    try:
        proc.wait_ready(START_S)
        yield Served(proc, frontend, grpc, rest)
    finally:
        proc.stop()


def status(frontend: str) -> Status:
    answer = broker_status(frontend)
    assert answer is not None
    return answer


def test_one_worker_per_device_id_and_num_parallel_workers(served: Served) -> None:
    workers = status(served.frontend).workers
    assert sorted((worker.servable, worker.device) for worker in workers) == [
        ("add", "cpu"), ("add", "cpu"), ("digits", "cpu"), ("digits", "cpu"),
    ]  # fmt: skip
    children = psutil.Process(served.proc.pid).children()
    commands = sorted(child.cmdline()[1].rpartition("/")[2] for child in children)
    assert commands == [
        "msq-broker", "msq-grpc-gateway", "msq-rest-gateway",
        "msq-worker", "msq-worker", "msq-worker", "msq-worker",
    ]  # fmt: skip


def test_the_unix_grpc_address_answers_mindspore_serving_clients(served: Served) -> None:
    result = Client(served.grpc, "add", "add_common", timeout=30).infer([ONES, ONES])
    assert isinstance(result, list)
    assert len(result) == 2
    for instance in result:
        np.testing.assert_array_equal(instance["y"], np.full((2, 2), 2.0, np.float32))


def test_the_restful_address_answers_mindspore_serving_requests(served: Served) -> None:
    body = json.dumps({"instances": {"x1": [[1.0, 2.0], [3.0, 4.0]], "x2": [[1.0] * 2] * 2}})
    request = urllib.request.Request(
        f"http://{served.rest}/model/add:add_common", body.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read()) == {"instances": [{"y": [[2.0, 3.0], [4.0, 5.0]]}]}


def test_set_max_enqueued_requests_bounds_the_queues(served: Served) -> None:
    result = Client(served.grpc, "add", "add_common", timeout=30).infer([ONES] * 101)
    assert isinstance(result, dict)
    assert result["error"].startswith("request too large: 101 instances can never fit the queue")
    assert result["error"].endswith("(limit 100); split it into smaller requests")


def test_sigterm_stops_every_process(served: Served) -> None:
    children = psutil.Process(served.proc.pid).children(recursive=True)
    assert len(children) >= 7
    served.proc.process.send_signal(signal.SIGTERM)  # the launcher only, not its group
    assert served.proc.process.wait(60) == 0
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []


def test_a_servable_that_cannot_start_fails_the_script_and_stops_everything(
    tmp_path: Path,
) -> None:
    script = tmp_path / "serving_server.py"
    script.write_text(
        "from mindspore_serving import server\n"
        f"config = server.ServableStartConfig({str(EXAMPLES)!r}, 'nope', device_type='CPU')\n"
        "server.start_servables(config)\n"
    )
    frontend = endpoint()
    proc = msq_run(write_config(tmp_path, frontend), script).start()
    try:
        assert proc.process.wait(120) == 1
    finally:
        proc.stop()
    assert (
        "RuntimeError: Fail to start workers: worker nope cpu #1 exited with code 1" in proc.log()
    )
    assert wait_until_gone(frontend)


def wait_until_gone(endpoint_text: str, timeout_s: float = 30.0) -> bool:
    """Whether every process with `endpoint_text` on its command line exits in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(endpoint_text in " ".join(p.info["cmdline"] or ()) for p in
                   psutil.process_iter(["cmdline"])):  # fmt: skip
            return True
        time.sleep(0.1)
    return False
