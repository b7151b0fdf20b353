"""Real msq processes for integration tests: start on free loopback ports, wait, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from msq.process import is_ready_line
from msq.proto import transport
from msq.proto.curve import CurveClient
from msq.proto.messages import Status, StatusQuery

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "servables"
#: Seconds a process may take to print its ready line (workers load and warm up models).
READY_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def endpoint() -> str:
    """A free ZeroMQ TCP endpoint on loopback."""
    return f"tcp://127.0.0.1:{free_port()}"


@dataclass(eq=False)
class Proc:
    """A started process whose stderr is captured to a log file and watched for 'ready'."""

    name: str
    args: list[str]
    env: dict[str, str] | None = None
    #: A file for the process's stdout (None: discarded).
    stdout: Path | None = None
    process: subprocess.Popen[bytes] = field(init=False)
    log_path: Path = field(init=False)
    ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Proc:
        fd, path = tempfile.mkstemp(prefix=f"msq-{self.name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        with contextlib.ExitStack() as files:
            out = (
                subprocess.DEVNULL
                if self.stdout is None
                else files.enter_context(self.stdout.open("wb"))
            )
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.PIPE, env=env, start_new_session=True,
            )  # fmt: skip
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _watch(self) -> None:
        assert self.process.stderr is not None
        with self.log_path.open("ab") as log:
            for line in iter(self.process.stderr.readline, b""):
                log.write(line)
                log.flush()
                if is_ready_line(line.decode("utf-8", "replace")):
                    self.ready.set()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> Proc:
        deadline = time.monotonic() + timeout_s
        while not self.ready.wait(0.1):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout_s} s:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL the whole process group after `timeout_s`."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start_all(procs: Iterable[Proc]) -> list[Proc]:
    """Start processes in parallel and wait until each is ready."""
    started = [proc.start() for proc in procs]
    try:
        for proc in started:
            proc.wait_ready()
    except RuntimeError:
        stop_all(started)
        raise
    return started


def stop_all(procs: Iterable[Proc]) -> None:
    for proc in reversed(list(procs)):
        proc.stop()


def broker(frontend: str, backend: str, *extra: str) -> Proc:
    return Proc("broker", [sys.executable, "-m", "msq.broker.cli", "--frontend", frontend,
                           "--backend", backend, *extra])  # fmt: skip


def worker(backend: str, servable: str, servable_dir: Path = EXAMPLES, *extra: str) -> Proc:
    return Proc(
        f"worker-{servable}",
        [sys.executable, "-m", "msq.workers.cli", "--device", "cpu", "--servable-dir",
         str(servable_dir), "--servable", servable, "--broker", backend, "--threads", "1",
         *extra],
    )  # fmt: skip


def served(frontend: str, curve: CurveClient | None = None) -> dict[str, int]:
    """Servable name -> number of workers, as the broker reports it now."""
    status = broker_status(frontend, curve)
    counts: dict[str, int] = {}
    for info in [] if status is None else status.servables:
        counts[info.servable] = counts.get(info.servable, 0) + info.workers
    return counts


def broker_status(frontend: str, curve: CurveClient | None = None) -> Status | None:
    """The broker's answer to a `StatusQuery` (None: no answer within 2 s)."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = transport.dealer(context, frontend, curve=curve)
    try:
        sock.send_multipart(transport.frames_of(StatusQuery(1)))
        if not sock.poll(2000):
            return None
        status = transport.message_of(sock.recv_multipart(copy=False))
    finally:
        sock.close(linger=0)
    assert isinstance(status, Status)
    return status


def wait_served(
    frontend: str,
    expected: dict[str, int],
    timeout_s: float = 30.0,
    curve: CurveClient | None = None,
) -> None:
    """Wait until the broker reports at least `expected` workers per servable."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = served(frontend, curve)
        if all(counts.get(name, 0) >= n for name, n in expected.items()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"broker serves {counts}, expected {expected}")
        time.sleep(0.05)


def start_served(
    procs: Iterable[Proc],
    frontend: str,
    expected: dict[str, int],
    curve: CurveClient | None = None,
) -> list[Proc]:
    """Start processes in parallel, then wait until the broker at `frontend` serves
    `expected` (servable -> workers); stop them all if anything fails."""
    started = start_all(procs)
    try:
        wait_served(frontend, expected, curve=curve)
    except RuntimeError:
        stop_all(started)
        raise
    return started


@dataclass
class Cluster:
    """A running broker and its workers."""

    frontend: str
    backend: str
    procs: list[Proc]

    def stop(self) -> None:
        stop_all(self.procs)


def start_cluster(
    servables: Iterable[tuple[str, Path]], *broker_args: str, workers_per_servable: int = 1
) -> Cluster:
    """Start a broker and workers for `(servable, servable_dir)` pairs, all in parallel."""
    servables = list(servables)
    frontend, backend = endpoint(), endpoint()
    procs = [broker(frontend, backend, *broker_args)]
    procs += [
        worker(backend, name, directory)
        for name, directory in servables
        for _ in range(workers_per_servable)
    ]
    expected = {name: workers_per_servable for name, _ in servables}
    return Cluster(frontend, backend, start_served(procs, frontend, expected))
