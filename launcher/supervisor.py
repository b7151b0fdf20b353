"""Child-process supervision for `msq serve` (and `msq-grpc-gateway --grpc-workers N`'s
parent): start, watch, restart with back-off, stop.

Children may be added and removed while `watch()` runs (the model controller starts and stops
workers as versions come and go, from its own threads); a removed child is never restarted.
Every child is started by the thread that made the supervisor (the one that runs `watch()`):
the parent-death signal fires when the thread that started a child ends, not only the process.

Each child's stderr is relayed line by line with its name in front; a child counts as started
when it prints its "ready" line. Children get SIGTERM if the launcher itself dies (Linux
parent-death signal), so nothing is left behind even after a SIGKILL of the launcher.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from msq.process import is_ready_line

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 32.0
#: A child that stayed up this long is healthy again: its back-off starts over.
STABLE_AFTER_S = 60.0


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


# Loaded in the parent: the child, between fork and exec, only makes one system call.
_LIBC = _load_libc() if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child, before exec: receive SIGTERM when the launcher dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(eq=False)
class Child:
    """One supervised process: its command, its current process, its restart schedule."""

    name: str
    command: list[str]
    #: What the process is ("kind": broker, worker, grpc, rest; a worker's "servable").
    labels: dict[str, str] = field(default_factory=dict)
    restart: bool = True
    process: subprocess.Popen[bytes] | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    started_at: float = 0.0
    backoff_s: float = MIN_BACKOFF_S
    restart_at: float | None = None
    #: The last line the process wrote on stderr (a worker's start-up error, say).
    last_line: str = ""
    #: Its environment (None: the supervisor's).
    env: dict[str, str] | None = None

    def start(self) -> None:
        self.ready.clear()
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (one async-signal-safe syscall)
        )
        assert self.process.stderr is not None
        threading.Thread(
            target=self._relay, args=(self.process.stderr,), name=f"relay-{self.name}", daemon=True
        ).start()

    def _relay(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if is_ready_line(line):
                self.ready.set()
            self.last_line = line
            sys.stderr.write(f"[{self.name}] {line}\n")
            sys.stderr.flush()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Starts children, restarts those that die, and stops them all."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._owner = threading.get_ident()
        #: Children added from other threads, for `watch()` to start.
        self._to_start: list[Child] = []

    def start(self, *children: Child, timeout_s: float) -> None:
        """Start children in parallel and wait until each has said it is ready."""
        self.add(*children)
        self.wait_ready(*children, timeout_s=timeout_s)

    def add(self, *children: Child) -> None:
        """Start children (from another thread: soon, by `watch()`) and supervise them from now
        on, without waiting for them."""
        with self._lock:
            self.children.extend(children)
            if threading.get_ident() == self._owner:
                for child in children:
                    child.start()
            else:
                self._to_start.extend(children)

    def remove(self, child: Child, grace_s: float) -> None:
        """Stop supervising `child`, SIGTERM it and wait up to `grace_s` for it to exit (a
        worker drains first), then SIGKILL it."""
        with self._lock:
            if child in self.children:
                self.children.remove(child)
            if child in self._to_start:
                self._to_start.remove(child)
            child.restart_at = None
        if child.alive and child.process is not None:
            _terminate([child.process], grace_s)

    def wait_ready(self, *children: Child, timeout_s: float) -> None:
        """Wait until each child has said it is ready; RuntimeError when one exits first, or
        does not get ready in time."""
        deadline = time.monotonic() + timeout_s
        for child in children:
            while not child.ready.wait(0.1):
                if self._stopping.is_set():
                    raise RuntimeError("interrupted while starting")
                if child.process is not None and not child.alive:
                    code = child.process.returncode
                    raise RuntimeError(f"{child.name} exited with code {code} while starting")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{child.name} did not become ready in {timeout_s:.0f} s")

    def watch(self) -> None:
        """Until `stop()`: report children that die and restart them with back-off."""
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            with self._lock:
                for child in self._to_start:
                    child.start()
                self._to_start.clear()
                for child in self.children:
                    self._check(child, now)

    def _check(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                log.warning("restarting %s", child.name)
                child.restart_at = None
                child.start()
            return
        if child.alive or child.process is None:
            return
        code = child.process.returncode
        if not child.restart:
            log.error("%s exited with code %s", child.name, code)
            return
        if now - child.started_at > STABLE_AFTER_S:
            child.backoff_s = MIN_BACKOFF_S
        log.error("%s exited unexpectedly with code %s; restarting in %.0f s",
                  child.name, code, child.backoff_s)  # fmt: skip
        child.restart_at = now + child.backoff_s
        child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S)

    def stop(self) -> None:
        """Ask `watch()` to return (signal-safe)."""
        self._stopping.set()

    def shutdown(self, grace_s: float = 10.0) -> None:
        """SIGTERM every child, the first one started (the broker) once the others exited (so
        that workers drain with their broker there), then SIGKILL what remains after
        `grace_s` each."""
        self._stopping.set()
        with self._lock:
            running = [c.process for c in reversed(self.children) if c.alive and c.process]
        if running:
            *others, first = running
            _terminate(others, grace_s)
            _terminate([first], grace_s)


def _terminate(processes: list[subprocess.Popen[bytes]], grace_s: float) -> None:
    """SIGTERM the processes, wait up to `grace_s` for all of them, SIGKILL what remains."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
