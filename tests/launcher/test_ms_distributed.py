"""MindSpore Serving's distributed start calls: their checks and messages, exactly, and the
worker and agent command lines they map to (no process is started)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from msq.launcher import ms_distributed as distributed
from msq.launcher.ms_distributed import AgentStart, DistributedServable
from msq.launcher.settings import Deployment, Logging
from msq.proto import transport
from msq.workers.compat import mindspore_serving_alias
from tests.launcher.ms_api_cases import ACTUALLY, SERVABLE_CASES, refused

ADDRESS = "Serving Error: The {} Distributed gRPC address '{}'"


@pytest.fixture
def script_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A start script's folder (relative names resolve against it) with two rank files, two
    group config files and a valid 2-rank table."""
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "serving_server.py")])
    for name in ("rank_0.mindir", "rank_1.mindir", "group_0.pb", "group_1.pb"):
        (tmp_path / name).write_bytes(b"")
    table = {"server_list": [{"server_id": "127.0.0.1", "device": [
        {"device_id": "0", "rank_id": "0"}, {"device_id": "1", "rank_id": "1"},
    ]}]}  # fmt: skip
    (tmp_path / "rank_table.json").write_text(json.dumps(table))
    return tmp_path


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *SERVABLE_CASES,
        ({"rank_table_json_file": 1},
         f"Parameter 'rank_table_json_file' should be str, {ACTUALLY} 'int'>"),
        ({"rank_table_json_file": ""}, "Parameter 'rank_table_json_file' should not be empty str"),
        ({"distributed_address": None},
         f"Parameter 'distributed_address' should be str, {ACTUALLY} 'NoneType'>"),
        ({"wait_agents_time_in_seconds": -1},
         "Parameter 'wait_agents_time_in_seconds' should be >= 0"),
        ({"wait_agents_time_in_seconds": 1.5},
         f"Parameter 'wait_agents_time_in_seconds' should be int, {ACTUALLY} 'float'>"),
        ({"distributed_address": "127.0.0.1"},
         ADDRESS.format("format of the", "127.0.0.1") + " is illegal"),
        ({"distributed_address": ":6200"},
         "Serving Error: Missing ip or port of the Distributed gRPC address ':6200'"),
        ({"distributed_address": "127.0.0.1:0"},
         ADDRESS.format("port of the", "127.0.0.1:0") + " is out of legal range [1 ~ 65535]"),
    ],
)  # fmt: skip
def test_start_servable_checks(script_dir: Path, kwargs: dict[str, Any], message: str) -> None:
    arguments = {"servable_directory": ".", "servable_name": "matmul", **kwargs}
    refused(message, distributed.start_servable, **arguments)


def test_start_servable_refuses_a_bad_rank_table_before_starting_anything(
    script_dir: Path,
) -> None:
    (script_dir / "bad.json").write_text('{"server_list": [{"server_id": "h"}]}')
    refused(f"rank table {script_dir / 'bad.json'}: server_list[0].device missing",
            distributed.start_servable, ".", "matmul", "bad.json")  # fmt: skip
    refused(f"rank table {script_dir / 'absent.json'}: no such file",
            distributed.start_servable, ".", "matmul", "absent.json")  # fmt: skip
    assert not distributed.ms_server.running()


def test_start_servable_arguments_resolve_against_the_script_folder(script_dir: Path) -> None:
    checked = distributed.check_servable(
        "servables", "matmul", "rank_table.json", 0, "127.0.0.1:6200", 30
    )
    assert checked == DistributedServable(
        servable_directory=script_dir / "servables",
        servable_name="matmul",
        version_number=1,  # 0 means 1, as in MindSpore Serving
        rank_table=script_dir / "rank_table.json",
        distributed_address="127.0.0.1:6200",
        wait_agents_s=30,
    )
    without = distributed.check_servable(str(script_dir), "matmul", None, 2, "0.0.0.0:6200", 0)
    assert (without.rank_table, without.version_number) == (None, 2)


def test_the_distributed_worker_command_line() -> None:
    servable = DistributedServable(
        Path("/srv/servables"), "matmul", 1, Path("/srv/rank_table.json"), "127.0.0.1:6200", 30
    )
    deployment = Deployment(log=Logging(level="warning"))
    child = servable.worker(deployment, "cpu", 3)
    assert child.command == [
        "msq-worker",
        "--device", "cpu",
        "--servable-dir", "/srv/servables",
        "--servable", "matmul:1",
        "--broker", transport.DEFAULT_BACKEND,
        "--workers-on-host", "3",
        "--log-level", "WARNING", "--log-format", "text",
        "--distributed-address", "127.0.0.1:6200",
        "--remote-agents",
        "--wait-agents-s", "30",
        "--rank-table", "/srv/rank_table.json",
    ]  # fmt: skip
    assert (child.name, child.labels) == (
        "distributed worker matmul",
        {"kind": "worker", "servable": "matmul", "version": "1"},
    )
    assert servable.ready_timeout_s(deployment) == deployment.timeouts.start_s + 30
    forever = DistributedServable(Path("/s"), "matmul", 2, None, "10.0.0.1:6200", 0)
    command = forever.worker(deployment, "ascend", 1).command
    assert command[1:3] == ["--device", "ascend:0"]
    assert command[-6:] == [
        "--distributed-address", "10.0.0.1:6200", "--remote-agents", "--wait-agents-s", "0",
        "--allow-insecure",  # beyond loopback, as MindSpore Serving's scripts bind: said loudly
    ]  # fmt: skip
    assert forever.ready_timeout_s(deployment) == float("inf")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distributed_address": 1},
         f"Parameter 'distributed_address' should be str, {ACTUALLY} 'int'>"),
        ({"agent_start_port": 0}, "Parameter 'agent_start_port' should be in range [1,65528]"),
        ({"agent_start_port": 65529},
         "Parameter 'agent_start_port' should be in range [1,65528]"),
        ({"model_files": None},
         f"Parameter 'model_files' should be str or tuple/list of str, {ACTUALLY} 'NoneType'>"),
        ({"model_files": [1]},
         f"The item of parameter 'model_files' should be str, {ACTUALLY} 'int'>"),
        ({"model_files": [""]}, "The item of parameter 'model_files' should not be empty str"),
        ({"model_files": ["a", "a"]},
         "The item value 'a' in parameter 'model_files' should not be repeated"),
        ({"model_files": [["a", 1]]},
         f"The inner of parameter 'model_files' should be str, {ACTUALLY} 'int'>"),
        ({"model_files": [["a", ""]]},
         "The inner of parameter 'model_files' should not be empty str"),
        ({"model_files": [["a", "a"]]},
         "The inner value 'a' in parameter 'model_files' should not be repeated"),
        ({"group_config_files": 3},
         f"Parameter 'group_config_files' should be str or tuple/list of str, {ACTUALLY} "
         "'int'>"),
        ({"dec_key": "0123456789abcdef"},
         f"Parameter 'dec_key' should be bytes, {ACTUALLY} 'str'>"),
        ({"dec_key": b"short"}, "Parameter 'dec_key' length 5 expected to be 16, 24 or 32"),
        ({"dec_mode": "AES-ECB"}, "Parameter 'dec_mode' expected to be 'AES-GCM' or 'AES-CBC'"),
        ({"agent_ip": "127.0.0.1"},
         "Parameter 'agent_ip' and parameter 'rank_start' must have values at the same time, "
         "or both None at the same time."),
        ({"rank_start": 0},
         "Parameter 'agent_ip' and parameter 'rank_start' must have values at the same time, "
         "or both None at the same time."),
        ({"agent_ip": 1, "rank_start": 0},
         f"Parameter 'agent_ip' should be str, {ACTUALLY} 'int'>"),
        ({"agent_ip": "127.0.0.1", "rank_start": -1}, "Parameter 'rank_start' should be >= 0"),
        ({"agent_ip": "192.0.2.1", "rank_start": 0},
         "Check ip 'agent_ip' valid failed, agent_ip: 192.0.2.1"),
        ({"agent_ip": "not-an-ip", "rank_start": 0},
         "Check ip 'agent_ip' valid failed, agent_ip: not-an-ip"),
        ({"group_config_files": ["group_0.pb"]},
         "Model files count 2 does not equal to group config files count 1 when "
         "group_config_files is not None, model files: (['rank_0.mindir'], ['rank_1.mindir']), "
         "group config files: (['group_0.pb'],)"),
        ({"model_files": [["rank_0.mindir", "x"], "rank_1.mindir"]},
         "please check the number of  model files and group config files, model files: "
         "(['rank_0.mindir', 'x'], ['rank_1.mindir']), group config files: None"),
        ({"model_files": ["rank_0.mindir"], "group_config_files": [["g", "h"]]},
         "please check the number of  group config files, currently only support one at most"),
        ({"model_files": [["rank_0.mindir", "rank_1.mindir"]]},
         "msq's agents load one model file per rank, but each item of 'model_files' lists 2: "
         "(['rank_0.mindir', 'rank_1.mindir'],)"),
        ({"distributed_address": "127.0.0.1:x"},
         "Serving Error: The type of Distributed gRPC address '127.0.0.1:x' port is not a "
         "number"),
        ({"model_files": ["rank_0.mindir", "absent.mindir"]},
         "Cannot access model file '{dir}/absent.mindir'"),
        ({"model_files": ["rank_0.mindir"], "group_config_files": "absent.pb"},
         "Cannot access group config file '{dir}/absent.pb'"),
    ],
)  # fmt: skip
def test_startup_agents_checks(script_dir: Path, kwargs: dict[str, Any], message: str) -> None:
    arguments = {
        "distributed_address": "127.0.0.1:6200",
        "model_files": ["rank_0.mindir", "rank_1.mindir"],
        **kwargs,
    }
    refused(message.format(dir=script_dir), distributed.startup_agents, **arguments)


def test_startup_agents_arguments_resolve_against_the_script_folder(
    script_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checked = distributed.check_agents(
        "127.0.0.1:6200", ("rank_0.mindir", [str(script_dir / "rank_1.mindir")]),
        ["group_0.pb", "group_1.pb"], 7000, "127.0.0.1", 2, None, "AES-CBC",
    )  # fmt: skip
    files = (script_dir / "rank_0.mindir", script_dir / "rank_1.mindir")
    assert checked == AgentStart("127.0.0.1:6200", files, 2, "AES-CBC")
    assert [record.getMessage() for record in caplog.records] == [
        "group_config_files are checked but not used: msq's ranks communicate in MindSpore's "
        "dynamic cluster, which makes the world group; a model that needs the groups of these "
        "files is not supported yet"
    ]
    one = distributed.check_agents(
        "127.0.0.1:6200", "rank_0.mindir", None, 7000, None, None, None, "AES-GCM"
    )
    assert one == AgentStart("127.0.0.1:6200", (script_dir / "rank_0.mindir",), None)


def test_the_agent_command_line() -> None:
    files = (Path("/m/rank_2.mindir"), Path("/m/rank_3.mindir"))
    agents = AgentStart("10.0.0.1:6200", files, 2, "AES-CBC")
    child = agents.agent(Deployment(), "ascend", Path("/private/key"))
    assert child.command == [
        "msq-agent",
        "--worker", "10.0.0.1:6200",
        "--rank-start", "2", "--ranks", "2",
        "--device", "ascend:0,1",
        "--model-files", "/m/rank_2.mindir", "/m/rank_3.mindir",
        "--dec-key-file", "/private/key", "--dec-mode", "AES-CBC",
        "--log-level", "INFO", "--log-format", "text",
    ]  # fmt: skip
    assert (child.name, child.labels) == ("agents from rank 2", {"kind": "agent"})
    every = AgentStart("127.0.0.1:6200", files[:1]).agent(Deployment(), "cpu", None)
    assert every.command == [
        "msq-agent", "--worker", "127.0.0.1:6200", "--device", "cpu",
        "--model-files", "/m/rank_2.mindir", "--log-level", "INFO", "--log-format", "text",
    ]  # fmt: skip
    assert every.name == "agents"
    gpu = AgentStart("127.0.0.1:6200", files[:1]).agent(Deployment(), "gpu", None)
    assert gpu.command[3:5] == ["--device", "gpu:0"]


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1:6200", True), ("127.0.0.9:6200", True), ("localhost:6200", True),
     ("[::1]:6200", True), ("0.0.0.0:6200", False), ("10.0.0.1:6200", False),
     ("example.org:6200", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_loopback(address: str, loopback: bool) -> None:
    assert distributed.is_loopback(address) is loopback


def test_only_this_host_s_ipv4_addresses_are_local() -> None:
    assert distributed.is_local_ip("127.0.0.1")
    assert not distributed.is_local_ip("192.0.2.1")  # TEST-NET-1: no host has it
    assert not distributed.is_local_ip("::1")
    assert not distributed.is_local_ip("localhost")


def test_the_alias_has_the_distributed_namespace() -> None:
    with mindspore_serving_alias():
        import mindspore_serving.server.distributed  # type: ignore[import-not-found]
        from mindspore_serving.server import distributed as aliased  # type: ignore[import-not-found]

        assert mindspore_serving.server.distributed is aliased
        assert aliased.start_servable is distributed.start_servable
        assert aliased.startup_agents is distributed.startup_agents
    assert "mindspore_serving.server.distributed" not in sys.modules
