"""Start and stop the server processes a benchmark needs, and measure their memory and CPU.

Every process runs in its own session (so a gunicorn master and its workers stop together),
logs its output to a file, and is ready when a given line appears in that output.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

#: How long a process may take to become ready (MindSpore import + model compile included).
READY_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerStartError(RuntimeError):
    """A server process exited or did not become ready; the message shows its log's tail."""


@dataclass(slots=True)
class Server:
    """A started server process."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    ready: threading.Event = field(default_factory=threading.Event)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def processes(self) -> list[psutil.Process]:
        """The process and its live descendants (gunicorn workers); none once it exited."""
        try:
            root = psutil.Process(self.popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of the process and each of its children (gunicorn workers), MB."""
        sizes: dict[str, float] = {}
        for index, process in enumerate(self.processes()):
            label = self.name if index == 0 else f"{self.name}/child{index}"
            try:
                sizes[label] = round(process.memory_info().rss / 2**20, 1)
            except psutil.NoSuchProcess:
                continue
        return sizes

    def cpu_s(self) -> float:
        """CPU seconds (user + system, from /proc/PID/stat) the kernel accounted so far to the
        process and its live descendants (gunicorn workers)."""
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total


def _follow(server: Server, marker: str | None, times: int) -> None:
    """Copy the process output to its log file; set `ready` once `marker` showed up `times`."""
    if server.popen.stdout is None:
        return
    seen = 0
    with server.log_path.open("wb") as log:
        for line in server.popen.stdout:
            log.write(line)
            log.flush()
            if marker is not None and marker.encode() in line:
                seen += 1
                if seen >= times:
                    server.ready.set()


def start(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    *,
    ready_line: str | None = None,
    ready_times: int = 1,
    env: dict[str, str] | None = None,
) -> Server:
    """Start `argv`; it is ready when `ready_line` appeared `ready_times` (see `wait_ready`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    popen = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    server = Server(name, list(argv), log_dir / f"{name}.log", popen)
    threading.Thread(target=_follow, args=(server, ready_line, ready_times), daemon=True).start()
    return server


def wait_ready(servers: Sequence[Server], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until every server printed its ready line; raise `ServerStartError` if one exits
    or the time runs out."""
    deadline = time.monotonic() + timeout_s
    pending = list(servers)
    while pending:
        for server in list(pending):
            if server.popen.poll() is not None:
                time.sleep(0.2)  # let the log thread write the last lines
                raise ServerStartError(
                    f"{server.name} exited with {server.popen.returncode}:\n{server.log_tail()}"
                )
            if server.ready.is_set():
                pending.remove(server)
        if pending and time.monotonic() > deadline:
            names = ", ".join(server.name for server in pending)
            tails = "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in pending)
            raise ServerStartError(f"not ready after {timeout_s:.0f} s: {names}\n{tails}")
        time.sleep(0.05)


def stop(servers: Sequence[Server], grace_s: float = 5.0) -> None:
    """Terminate each server's process group and every descendant (Ray starts its actors in
    sessions of their own), then kill what is left after `grace_s`."""
    descendants = [child for server in servers for child in server.processes()[1:]]
    for server in servers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.popen.pid, signal.SIGTERM)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    deadline = time.monotonic() + grace_s
    for server in servers:
        try:
            server.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.popen.pid, signal.SIGKILL)
            server.popen.wait()
    _, alive = psutil.wait_procs(descendants, timeout=max(0.0, deadline - time.monotonic()))
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
