"""The running side of MindSpore Serving's start API (`msq.launcher.ms_server`): the one
deployment a process runs — its settings so far, the supervisor of its processes and the thread
that keeps them running, the private work folder and the key files in it, start and stop."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path

from msq.launcher import plan
from msq.launcher.settings import Deployment
from msq.launcher.supervisor import Child, Supervisor
from msq.process import on_stop_signals

#: The start API's logger: its lines read as before the runtime had a module of its own.
log = logging.getLogger("msq.launcher.ms_server")


class Server:
    """The one deployment this process runs: its settings so far, supervisor and files."""

    def __init__(self, base: Deployment) -> None:
        self.lock = threading.RLock()
        self.deployment = base
        self.supervisor: Supervisor | None = None
        self.workdir: Path | None = None
        self.thread: threading.Thread | None = None
        self.workers_on_host = 0

    @property
    def running(self) -> bool:
        """Whether processes were started (and not yet stopped)."""
        return self.supervisor is not None

    def ensure_supervisor(self) -> Supervisor:
        """The supervisor (and the private work folder), made on first use."""
        if self.supervisor is not None:
            return self.supervisor
        self.workdir = Path(tempfile.mkdtemp(prefix="msq-server-"))
        self.deployment = plan.on_host(self.deployment, self.workdir)
        self.supervisor = Supervisor()
        if threading.current_thread() is threading.main_thread():
            on_stop_signals(self.supervisor.stop)
        return self.supervisor

    def ensure_broker(self) -> Supervisor:
        """The supervisor, after starting the broker on first use."""
        supervisor = self.ensure_supervisor()
        if not any(child.labels["kind"] == "broker" for child in supervisor.children):
            assert self.workdir is not None
            self.start(*plan.brokers(self.deployment, self.workdir))
        return supervisor

    def start(self, *children: Child, timeout_s: float | None = None) -> None:
        """Start `children` and wait until they are ready (in `timeout_s`, by default the
        deployment's `timeouts.start_s`); then keep supervising them."""
        assert self.supervisor is not None
        if timeout_s is None:
            timeout_s = self.deployment.timeouts.start_s
        self.supervisor.start(*children, timeout_s=timeout_s)
        if self.thread is None:
            self.thread = threading.Thread(target=self._supervise, name="msq-server")
            self.thread.start()

    def _supervise(self) -> None:
        supervisor, workdir = self.supervisor, self.workdir
        assert supervisor is not None
        assert workdir is not None
        supervisor.watch()
        log.info("stopping")
        supervisor.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    def key_file(self, key: bytes) -> Path:
        """A 0600 file in the private work folder holding `key` (removed at stop)."""
        assert self.workdir is not None
        descriptor, name = tempfile.mkstemp(prefix="dec-key-", dir=self.workdir)
        with open(descriptor, "wb") as file:
            file.write(key)
        return Path(name)

    def stop(self) -> None:
        """Stop every process and remove the work folder."""
        if self.supervisor is None:
            return
        self.supervisor.stop()
        if self.thread is not None:
            self.thread.join()
        else:  # nothing got ready: no supervising thread
            self.supervisor.shutdown()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
