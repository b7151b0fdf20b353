"""MindSpore Serving's distributed start calls (`mindspore_serving.server.distributed`) on msq.

    from msq.launcher import ms_distributed as distributed  # under `msq run`: mindspore_serving

    distributed.start_servable(servable_dir, "matmul", rank_table_json_file="rank_table.json",
                               distributed_address="127.0.0.1:6200")      # serving_server.py
    distributed.startup_agents("127.0.0.1:6200", model_files)              # serving_agent.py

The same signatures, defaults and argument messages as MindSpore Serving. `start_servable` adds
one `msq-worker --remote-agents` to the deployment of `msq.launcher.ms_server` (starting its
broker first) and returns when the worker is ready, that is when every rank has joined, loaded
and warmed up; `startup_agents` runs one `msq-agent` for this host's ranks and returns when it
is ready. Either keeps its processes running after the script's main returns, until `stop()`,
Ctrl-C or SIGTERM; a failed call stops everything and raises RuntimeError.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from msq.launcher import ms_server, plan
from msq.launcher.ms_checks import check_address, check_decryption, check_int, check_str
from msq.launcher.settings import Deployment, Servable
from msq.launcher.supervisor import Child
from msq.workers.decryption import DEFAULT_DEC_MODE
from msq.workers.rank_table import RankTableError, load_rank_table

__all__ = ["AgentStart", "DistributedServable", "start_servable", "startup_agents"]

#: The names `mindspore_serving.server.distributed` has (`msq.workers.compat` aliases them).
MINDSPORE_SERVING_API = ("start_servable", "startup_agents")
#: The tag of MindSpore Serving's messages about the worker's agent address.
DISTRIBUTED_TAG = "Distributed gRPC"
_MAX_AGENT_START_PORT = 65535 - 7

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DistributedServable:
    """`start_servable`'s arguments, checked: what the distributed worker serves and where its
    agents join."""

    servable_directory: Path
    servable_name: str
    version_number: int
    rank_table: Path | None
    distributed_address: str
    wait_agents_s: int

    def worker(self, deployment: Deployment, device_kind: str, on_host: int) -> Child:
        """The `msq-worker` that waits for agents at `distributed_address` (`on_host` workers
        share this host's cores; `device_kind` is cpu, gpu or ascend)."""
        servable = Servable(
            self.servable_name,
            version=self.version_number,
            directory=self.servable_directory,
            devices="cpu" if device_kind == "cpu" else f"{device_kind}:0",
            workers_per_device=1,
        )
        [child] = plan.servable_workers(deployment, servable, on_host)
        child.command += [
            "--distributed-address", self.distributed_address,
            "--remote-agents",
            "--wait-agents-s", str(self.wait_agents_s),
        ]  # fmt: skip
        if self.rank_table is not None:
            child.command += ["--rank-table", str(self.rank_table)]
        if not is_loopback(self.distributed_address):
            # MindSpore Serving's default is 0.0.0.0:6200: allowed, and the worker says so loudly.
            child.command.append("--allow-insecure")
        child.name = f"distributed worker {self.servable_name}"
        return child

    def ready_timeout_s(self, deployment: Deployment) -> float:
        """How long the worker may take to be ready: the start time-out plus the agents'
        waiting time, or no limit when that is 0 (wait forever, as MindSpore Serving)."""
        if self.wait_agents_s == 0:
            return math.inf
        return deployment.timeouts.start_s + self.wait_agents_s


@dataclass(frozen=True, slots=True)
class AgentStart:
    """`startup_agents`'s arguments, checked: where the worker is, the model file of each local
    rank (absolute), the first local rank (None: every rank is local), decryption."""

    distributed_address: str
    model_files: tuple[Path, ...]
    rank_start: int | None = None
    dec_mode: str = DEFAULT_DEC_MODE

    def agent(self, deployment: Deployment, device_kind: str, dec_key_file: Path | None) -> Child:
        """The `msq-agent` of these ranks (the key, if any, in `dec_key_file`). On GPU and
        Ascend, local rank k runs on device k: the usual HCCL layout, where a rank's device id
        is its index on its server."""
        devices = "cpu"
        if device_kind != "cpu":
            devices = f"{device_kind}:{','.join(map(str, range(len(self.model_files))))}"
        ranks = []
        if self.rank_start is not None:
            ranks = ["--rank-start", str(self.rank_start), "--ranks", str(len(self.model_files))]
        decryption = []
        if dec_key_file is not None:
            decryption = ["--dec-key-file", str(dec_key_file), "--dec-mode", self.dec_mode]
        command = [
            "msq-agent",
            "--worker", self.distributed_address,
            *ranks,
            "--device", devices,
            "--model-files", *map(str, self.model_files),
            *decryption,
            *plan.log_options(deployment.log),
        ]  # fmt: skip
        name = "agents" if self.rank_start is None else f"agents from rank {self.rank_start}"
        return Child(name, command, {"kind": "agent"})


def check_servable(  # noqa: PLR0917 - MindSpore Serving's signature
    servable_directory: object,
    servable_name: object,
    rank_table_json_file: object,
    version_number: object,
    distributed_address: object,
    wait_agents_time_in_seconds: object,
) -> DistributedServable:
    """`start_servable`'s checks, in MindSpore Serving's order and words; relative paths are
    relative to the start script's folder, as there."""
    directory = check_str("servable_directory", servable_directory)
    name = check_str("servable_name", servable_name)
    version = check_int("version_number", version_number, 0) or 1
    rank_table = None
    if rank_table_json_file is not None:
        rank_table = _script_path(check_str("rank_table_json_file", rank_table_json_file))
    address = check_str("distributed_address", distributed_address)
    wait_s = check_int("wait_agents_time_in_seconds", wait_agents_time_in_seconds, 0)
    check_address(address, DISTRIBUTED_TAG)
    if rank_table is not None:
        try:
            load_rank_table(rank_table)
        except RankTableError as exc:
            raise RuntimeError(str(exc)) from None
    return DistributedServable(_script_path(directory), name, version, rank_table, address, wait_s)


def check_agents(  # noqa: PLR0917 - MindSpore Serving's signature
    distributed_address: object,
    model_files: object,
    group_config_files: object,
    agent_start_port: object,
    agent_ip: object,
    rank_start: object,
    dec_key: object,
    dec_mode: object,
) -> AgentStart:
    """`startup_agents`'s checks, in MindSpore Serving's order and words; relative file names
    are relative to the start script's folder, as there."""
    address = check_str("distributed_address", distributed_address)
    check_int("agent_start_port", agent_start_port, 1, _MAX_AGENT_START_PORT)
    models = _file_lists("model_files", model_files)
    groups = None
    if group_config_files is not None:
        groups = _file_lists("group_config_files", group_config_files)
    mode = check_decryption(dec_key, dec_mode)
    first_rank = _check_agent_ip(agent_ip, rank_start)
    if groups is not None and len(models) != len(groups):
        raise RuntimeError(
            f"Model files count {len(models)} does not equal to group config files count "
            f"{len(groups)} when group_config_files is not None, model files: {models}, "
            f"group config files: {groups}"
        )
    _check_file_counts(models, groups)
    check_address(address, DISTRIBUTED_TAG)
    files = tuple(_readable(item[0], "model file") for item in models)
    if groups is not None:
        for item in groups:
            _readable(item[0], "group config file")
        log.warning(
            "group_config_files are checked but not used: msq's ranks communicate in "
            "MindSpore's dynamic cluster, which makes the world group; a model that needs "
            "the groups of these files is not supported yet"
        )
    return AgentStart(address, files, first_rank, mode)


def _check_agent_ip(agent_ip: object, rank_start: object) -> int | None:
    """`agent_ip` and `rank_start`: both or neither; the IP must be one of this host's."""
    if (agent_ip is None) != (rank_start is None):
        raise RuntimeError(
            "Parameter 'agent_ip' and parameter 'rank_start' must have values at the same "
            "time, or both None at the same time."
        )
    if agent_ip is None:
        return None
    ip = check_str("agent_ip", agent_ip)
    first = check_int("rank_start", rank_start, 0)
    if not is_local_ip(ip):
        raise RuntimeError(f"Check ip 'agent_ip' valid failed, agent_ip: {ip}")
    return first


def is_local_ip(ip: str) -> bool:
    """Whether `ip` is an IPv4 address of this host (a socket can bind it)."""
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
    return True


def _file_lists(name: str, files: object) -> tuple[list[str], ...]:
    """One str, or a list/tuple of str or of lists of str, as a tuple of lists (MindSpore
    Serving's form: a rank's files in each list)."""
    if isinstance(files, str):
        files = (files,)
    if not isinstance(files, (tuple, list)):
        raise RuntimeError(
            f"Parameter '{name}' should be str or tuple/list of str, but actually {type(files)}"
        )
    lists: list[list[str]] = []
    seen: list[str] = []
    for item in files:
        if isinstance(item, list):
            inner_files: list[str] = []
            for inner in item:
                inner_files.append(_file_name(name, inner, inner_files, "inner"))
            lists.append(inner_files)
        else:
            seen.append(_file_name(name, item, seen, "item"))
            lists.append([item])
    return tuple(lists)


def _file_name(name: str, value: object, seen: list[str], part: str) -> str:
    """One file name of an item (`part` "item") or of an item's list ("inner")."""
    if not isinstance(value, str):
        raise RuntimeError(
            f"The {part} of parameter '{name}' should be str, but actually {type(value)}"
        )
    if not value:
        raise RuntimeError(f"The {part} of parameter '{name}' should not be empty str")
    if value in seen:
        raise RuntimeError(
            f"The {part} value '{value}' in parameter '{name}' should not be repeated"
        )
    return value


def _check_file_counts(models: tuple[list[str], ...], groups: tuple[list[str], ...] | None) -> None:
    """Every rank has as many files as the others: one model file (msq loads one graph per
    rank) and at most one group config file."""
    for files in (models, groups):
        if files is not None and len({len(item) for item in files}) > 1:
            raise RuntimeError(
                f"please check the number of  model files and group config files, model files: "
                f"{models}, group config files: {groups}"
            )
    if groups is not None and groups and len(groups[0]) != 1:
        raise RuntimeError(
            "please check the number of  group config files, currently only support one at most"
        )
    if models and len(models[0]) != 1:
        raise RuntimeError(
            f"msq's agents load one model file per rank, but each item of 'model_files' lists "
            f"{len(models[0])}: {models}"
        )


def _script_path(name: str) -> Path:
    """`name` resolved against the start script's folder (MindSpore Serving's rule)."""
    return (Path(sys.argv[0]).resolve().parent / name).resolve()


def _readable(name: str, what: str) -> Path:
    path = _script_path(name)
    if not os.access(path, os.R_OK):
        raise RuntimeError(f"Cannot access {what} '{path}'")
    return path


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT names this host's loopback interface only."""
    host = address.rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@ms_server.stop_on_error
def start_servable(  # noqa: PLR0917 - MindSpore Serving's signature
    servable_directory: str,
    servable_name: str,
    rank_table_json_file: str | None = None,
    version_number: int = 1,
    distributed_address: str = "0.0.0.0:6200",
    wait_agents_time_in_seconds: int = 0,
) -> None:
    """Start the worker of a distributed servable; return once its agents (`startup_agents`,
    here or on other hosts) have joined at `distributed_address` and every rank is ready.

    `rank_table_json_file` (an HCCL rank table) is optional on CPU; `version_number` 0 means 1;
    `wait_agents_time_in_seconds` 0 waits for the agents forever."""
    servable = check_servable(
        servable_directory,
        servable_name,
        rank_table_json_file,
        version_number,
        distributed_address,
        wait_agents_time_in_seconds,
    )
    server = ms_server.current()
    server.ensure_broker()
    server.workers_on_host += 1
    worker = servable.worker(
        server.deployment, ms_server.default_device_type(), server.workers_on_host
    )
    log.info("starting %s; its agents join at %s", worker.name, servable.distributed_address)
    try:
        server.start(worker, timeout_s=servable.ready_timeout_s(server.deployment))
    except RuntimeError as exc:
        raise RuntimeError(f"Fail to start workers: {exc}") from None


@ms_server.stop_on_error
def startup_agents(  # noqa: PLR0917 - MindSpore Serving's signature
    distributed_address: str,
    model_files: str | list[str | list[str]] | tuple[str | list[str], ...],
    group_config_files: str | list[str | list[str]] | tuple[str | list[str], ...] | None = None,
    agent_start_port: int = 7000,
    agent_ip: str | None = None,
    rank_start: int | None = None,
    dec_key: bytes | None = None,
    dec_mode: str = "AES-GCM",
) -> None:
    """Join this host's agents (one process per rank, one model file each) to the worker at
    `distributed_address`; return once they are ready.

    With `agent_ip` and `rank_start` (both or neither) this host runs ranks `rank_start` ..
    `rank_start + len(model_files) - 1`; without them, every rank of the servable (one host).
    `agent_start_port` is checked but unused: msq's agents connect to the worker and listen
    on no port."""
    agents = check_agents(
        distributed_address,
        model_files,
        group_config_files,
        agent_start_port,
        agent_ip,
        rank_start,
        dec_key,
        dec_mode,
    )
    server = ms_server.current()
    server.ensure_supervisor()
    key_file = None if dec_key is None else server.key_file(dec_key)
    agent = agents.agent(server.deployment, ms_server.default_device_type(), key_file)
    log.info("starting %s; joining the worker at %s", agent.name, agents.distributed_address)
    try:
        server.start(agent, timeout_s=math.inf)
    except RuntimeError as exc:
        raise RuntimeError(f"Fail to start agents: {exc}") from None
