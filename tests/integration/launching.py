"""`msq serve` as a test process: a copy of an example servable in a temporary servable
directory, the launcher on free loopback ports, and V2 calls through tritonclient."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import tritonclient.grpc as triton_grpc

from tests.processes import EXAMPLES, Proc, endpoint, free_port

#: Seconds `msq serve` may take to print its banner (workers load and warm up models).
START_TIMEOUT_S = 180.0


def copy_servable(servable_dir: Path, name: str, versions: tuple[int, ...] = (1,)) -> None:
    """Copy the example `add` servable as `name`, with these version folders."""
    source = EXAMPLES / "add"
    (servable_dir / name).mkdir(parents=True)
    shutil.copy(source / "servable_config.py", servable_dir / name / "servable_config.py")
    for version in versions:
        add_version(servable_dir / name, version)


def add_version(folder: Path, version: int) -> None:
    """A new version folder of a copied servable, renamed into place once complete."""
    staging = folder.parent / f".{folder.name}-{version}.tmp"
    shutil.copytree(EXAMPLES / "add" / "1", staging)
    staging.rename(folder / str(version))


@dataclass(eq=False)
class Serving:
    """A running `msq serve` and its gateway addresses."""

    launcher: Proc
    grpc: str
    rest: str
    frontend: str

    def workers(self) -> dict[str, int]:
        """`NAME:VERSION` -> pid of each worker process the launcher runs now."""
        found = {}
        for child in psutil.Process(self.launcher.pid).children(recursive=True):
            try:
                command = child.cmdline()
            except psutil.Error:
                continue
            if "msq-worker" in " ".join(command[:2]) and child.status() != psutil.STATUS_ZOMBIE:
                found[command[command.index("--servable") + 1]] = child.pid
        return found

    def stop(self) -> None:
        self.launcher.stop(timeout_s=30)


def serve(servable_dir: Path, *options: str) -> Serving:
    """Start `msq serve` on `servable_dir` and wait for its banner."""
    frontend, backend = endpoint(), endpoint()
    grpc_address, rest_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    launcher = Proc(
        "launcher",
        [sys.executable, "-m", "msq.launcher.cli", "serve", str(servable_dir),
         "--rest-workers", "1", "--grpc", grpc_address, "--rest", rest_address,
         "--broker-frontend", frontend, "--broker-backend", backend, *options],
    ).start()  # fmt: skip
    wait_for(lambda: "msq ready:" in launcher.log() or launcher.process.poll() is not None)
    if launcher.process.poll() is not None:
        raise RuntimeError(f"msq serve exited:\n{launcher.log()}")
    return Serving(launcher, grpc_address, rest_address, frontend)


def wait_for(condition: Callable[[], bool], timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until `condition()` holds; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout_s} s"
        time.sleep(0.1)


def add_inputs(value: float) -> list[triton_grpc.InferInput]:
    """The inputs of `add.add_common` as V2 sees it (it batches: a leading batch dimension):
    x1 = value, x2 = 1, one float32 [2, 2] instance each."""
    inputs = []
    for name, fill in (("x1", value), ("x2", 1.0)):
        tensor = triton_grpc.InferInput(name, [1, 2, 2], "FP32")
        tensor.set_data_from_numpy(np.full((1, 2, 2), fill, np.float32))
        inputs.append(tensor)
    return inputs
