"""What the distributed-servable tests share: the tp_mlp example's reference answers and the
processes that serve it."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import psutil

from tests.processes import EXAMPLES, Proc

EXPORT_SCRIPT = EXAMPLES.parent / "export_tp_mlp.py"


def reference(x: np.ndarray) -> np.ndarray:
    """The tp_mlp model in NumPy from the export script's weights: relu(x @ w1 + b1) @ w2 + b2."""
    spec = importlib.util.spec_from_file_location("export_tp_mlp", EXPORT_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    w1, b1, w2, b2 = module.weights()
    return np.asarray(np.maximum(x @ w1 + b1, 0) @ w2 + b2, dtype=np.float32)


def inputs(count: int, seed: int = 0) -> np.ndarray:
    """`count` float32 [64] inputs."""
    return np.random.default_rng(seed).standard_normal((count, 64)).astype(np.float32)


def rank_pids(worker: Proc) -> dict[int, int]:
    """Rank -> pid of the worker's rank processes now."""
    found = {}
    for child in psutil.Process(worker.pid).children(recursive=True):
        try:
            command = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "msq.workers.distributed.rank" in command:
            found[int(command[command.index("--rank") + 1])] = child.pid
    return found


def agent(worker_address: str, *extra: str) -> Proc:
    """An `msq-agent` process (not started) joining the worker at `worker_address`."""
    command = [sys.executable, "-m", "msq.workers.distributed.agent_cli", "--worker",
               worker_address, "--threads", "1", *extra]  # fmt: skip
    return Proc("msq-agent", command)
