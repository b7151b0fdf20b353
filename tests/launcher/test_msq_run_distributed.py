"""`msq run` runs MindSpore Serving-style distributed start scripts unmodified: a server script
calling `distributed.start_servable` (tests/launcher/scripts/serving_server_distributed.py) and
an agent script calling `distributed.startup_agents` (scripts/serving_agent.py)."""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest

from msq.client import Client
from msq.proto.messages import MethodSignature
from msq.workers.rank_table import RankDevice, RankTable
from tests.launcher.test_msq_run import msq_run, status, wait_until_gone, write_config
from tests.processes import EXAMPLES, Proc, endpoint, free_port

SCRIPTS = Path(__file__).with_name("scripts")
SERVER = SCRIPTS / "serving_server_distributed.py"
AGENT = SCRIPTS / "serving_agent.py"
#: Issue 11's example: a 2-rank tensor-parallel MLP and the same model in one file.
SHARDED, WHOLE, RANKS = "tp_mlp", "tp_mlp_single", 2
START_S = 300.0  # a broker, two workers, two ranks in a MindSpore cluster, two gateways


def test_a_malformed_rank_table_fails_the_start_script_before_anything_starts(
    tmp_path: Path,
) -> None:
    table = tmp_path / "rank_table.json"
    table.write_text('{"server_list": [{"server_id": "127.0.0.1", "device": [{"rank_id": "0"}]}]}')
    frontend = endpoint()
    proc = msq_run(
        write_config(tmp_path, frontend), SERVER, str(EXAMPLES), str(table),
        f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}",
    ).start()  # fmt: skip
    try:
        assert proc.process.wait(120) == 1
    finally:
        proc.stop()
    assert (
        f"RuntimeError: rank table {table}: server_list[0].device[0].device_id missing"
        in proc.log()
    )
    assert wait_until_gone(frontend)


def test_an_agent_script_with_a_missing_rank_file_fails_clearly(tmp_path: Path) -> None:
    proc = msq_run(
        write_config(tmp_path, endpoint()), AGENT, f"127.0.0.1:{free_port()}", str(tmp_path), "2"
    ).start()
    try:
        assert proc.process.wait(120) == 1
    finally:
        proc.stop()
    assert f"RuntimeError: Cannot access model file '{tmp_path}/rank_0.mindir'" in proc.log()


@dataclass
class Served:
    server: Proc
    agents: Proc
    grpc: str
    rest: str
    frontend: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("msq-run-distributed")
    frontend, address = endpoint(), f"127.0.0.1:{free_port()}"
    grpc, rest = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    table = folder / "rank_table.json"
    ranks = tuple(RankDevice(rank, rank, "127.0.0.1") for rank in range(RANKS))
    table.write_text(RankTable(table, ranks).to_json())
    config = write_config(folder, frontend)
    server = msq_run(config, SERVER, str(EXAMPLES), str(table), address, grpc, rest)
    agents = msq_run(config, AGENT, address, str(EXAMPLES / SHARDED / "1"), str(RANKS))
    try:
        server.start()
        agents.start()
        agents.wait_ready(START_S)
        server.wait_ready(START_S)
        yield Served(server, agents, grpc, rest, frontend)
    finally:
        agents.stop()
        server.stop()


def method(frontend: str, servable: str) -> MethodSignature:
    [info] = [info for info in status(frontend).servables if info.servable == servable]
    return info.methods[0]


def instances(signature: MethodSignature, count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [
        {
            spec.name: rng.standard_normal(spec.shape or ()).astype(spec.dtype or "float32")
            for spec in signature.inputs
        }
        for _ in range(count)
    ]


@pytest.mark.parametrize("count", [1, 3])
def test_the_sharded_servable_answers_as_the_whole_model(served: Served, count: int) -> None:
    signature = method(served.frontend, SHARDED)
    assert method(served.frontend, WHOLE).name == signature.name
    batch = instances(signature, count)
    sharded = Client(served.grpc, SHARDED, signature.name, timeout=60).infer(batch)
    whole = Client(served.grpc, WHOLE, signature.name, timeout=60).infer(batch)
    assert isinstance(sharded, list)
    assert isinstance(whole, list)
    assert len(sharded) == len(whole) == count
    for got, expected in zip(sharded, whole, strict=True):
        assert got.keys() == expected.keys()
        for name in got:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5)


def test_the_restful_address_answers_for_the_sharded_servable(served: Served) -> None:
    signature = method(served.frontend, SHARDED)
    [instance] = instances(signature, 1)
    body = json.dumps({"instances": [{k: v.tolist() for k, v in instance.items()}]}).encode()
    answers = {}
    for servable in (SHARDED, WHOLE):
        url = f"http://{served.rest}/model/{servable}:{signature.name}"
        request = urllib.request.Request(url, body, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            answers[servable] = json.loads(response.read())["instances"][0]
    for name, value in answers[WHOLE].items():
        np.testing.assert_allclose(answers[SHARDED][name], value, rtol=1e-5, atol=1e-5)


def test_the_scripts_run_one_remote_agents_worker_and_one_agent_command(served: Served) -> None:
    def commands(proc: Proc) -> list[list[str]]:
        return [child.cmdline() for child in psutil.Process(proc.pid).children()]

    [worker] = [c for c in commands(served.server) if "--remote-agents" in c]
    assert worker[worker.index("--servable") + 1] == f"{SHARDED}:1"
    [agent] = commands(served.agents)
    assert Path(agent[1]).name == "msq-agent"
    assert agent[agent.index("--model-files") + 1 :][:RANKS] == [
        str(EXAMPLES / SHARDED / "1" / f"rank_{rank}.mindir") for rank in range(RANKS)
    ]


def test_sigterm_stops_both_scripts_and_every_process(served: Served) -> None:
    children = [
        child
        for proc in (served.agents, served.server)
        for child in psutil.Process(proc.pid).children(recursive=True)
    ]
    for proc in (served.agents, served.server):
        proc.process.send_signal(signal.SIGTERM)  # the launcher only, not its group
    assert served.agents.process.wait(60) == 0
    assert served.server.process.wait(60) == 0
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
