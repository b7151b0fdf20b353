"""The processes of a distributed servable: MindSpore's scheduler and one process per rank.

A rank process (`python -m msq.workers.distributed.rank`) is started by the worker itself (its
local ranks) or by `msq-agent` on any host; it learns where MindSpore's scheduler is from the
worker (`AgentPlan`), and sets MindSpore's dynamic-cluster variables from it (`cluster_env`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: MindSpore's native log level for the cluster's processes unless GLOG_v is set: warnings.
_GLOG_LEVEL = "2"


def free_port(host: str) -> int:
    """A TCP port free on `host` now (for MindSpore's scheduler)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cluster_env(host: str, port: int, rank_size: int, rank: int | None) -> dict[str, str]:
    """MindSpore's dynamic-cluster variables for the scheduler (`rank` None) or a rank."""
    env = {
        "MS_SCHED_HOST": host,
        "MS_SCHED_PORT": str(port),
        "MS_WORKER_NUM": str(rank_size),
        "MS_ROLE": "MS_SCHED" if rank is None else "MS_WORKER",
    }
    if rank is not None:
        env["MS_NODE_ID"] = str(rank)
    return env


def start_scheduler(host: str, port: int, rank_size: int) -> subprocess.Popen[bytes]:
    """Start MindSpore's scheduler for a cluster of `rank_size` ranks (its logs go to ours)."""
    env = {**os.environ, **cluster_env(host, port, rank_size, None)}
    return _popen([sys.executable, "-m", "msq.workers.distributed.scheduler"], env)


#: A rank's exit code when its group restarts (or its worker went away): join again.
REJOIN_EXIT = 75


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Be killed when the process that started this one dies (Linux; elsewhere nothing):
    ranks and schedulers call it first, so a killed worker or `msq-agent` leaves none."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl
        os._exit(1)


def _popen(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    env.setdefault("GLOG_v", _GLOG_LEVEL)
    # A session of its own: a signal to the worker's process group (a supervisor stopping it)
    # reaches the worker, which tears the group down itself, not the ranks half-way.
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def start_rank(
    worker: str, rank: int, device: str, model_file: Path | None, options: Sequence[str]
) -> subprocess.Popen[bytes]:
    """Start the process of rank `rank`, joining the worker at `worker` (`tcp://HOST:PORT`);
    `options` are more of its options (threads, key file, log level)."""
    command = [sys.executable, "-m", "msq.workers.distributed.rank", "--worker", worker,
               "--rank", str(rank), "--device", device, *options]  # fmt: skip
    if model_file is not None:
        command += ["--model-file", str(model_file)]
    return _popen(command, dict(os.environ))


def decryption_args(key_file: Path | None, mode: str) -> list[str]:
    """The options that pass a model key file on to a rank process (never the key itself)."""
    if key_file is None:
        return []
    return ["--dec-key-file", str(key_file.resolve()), "--dec-mode", mode]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Kill `processes` (ranks blocked in a collective do not answer SIGTERM) and reap them."""
    for process in processes:
        if process.poll() is None:
            process.kill()
    for process in processes:
        process.wait()
