"""Model control for `msq serve`: which servable versions run, and changing that while serving.

Triton's model control modes (`--model-control`):
- `none`: the versions the version policy picks at start-up are served until the end.
- `poll`: the servable directory is scanned every `--repository-poll-secs`; a new version
  folder gets its workers started (loaded, warmed up, registered: only then does version 0
  move to it), and a version that leaves the policy (its folder removed, or a newer one
  arrived) has its workers stopped gracefully: each drains (`Drain`, see docs/protocol.md),
  then exits. A new version starts before an old one stops, so no request fails.
- `explicit`: only the servables named by `--load-model` start; the V2 repository API loads and
  unloads servables (all versions its policy picks).

The controller answers the repository commands the broker relays from the gateways
(`msq.launcher.control_link`); the index lists every servable of the directory.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from msq.broker.control import NOT_EXPLICIT
from msq.launcher import plan
from msq.launcher.repository import Policies, VersionPolicy, scan, signature
from msq.launcher.settings import Deployment, SettingsError
from msq.launcher.status import StatusClient
from msq.launcher.supervisor import Child, Supervisor
from msq.proto.curve import CurveClient
from msq.proto.errors import ErrorKind, Failure
from msq.proto.messages import RepositoryModel

log = logging.getLogger(__name__)

#: Seconds a worker may take to drain and exit before it is killed.
DRAIN_TIMEOUT_S = 60.0


class ControlMode(enum.StrEnum):
    """Triton's model control modes."""

    NONE = "none"
    POLL = "poll"
    EXPLICIT = "explicit"


@dataclass(frozen=True, slots=True)
class WorkerTemplate:
    """How the workers of one servable version are started: as `msq.launcher.plan` starts a
    servable's workers, at that version."""

    deployment: Deployment
    #: Workers that share this host's cores.
    workers_on_host: int = 1

    def children(self, servable: str, version: int) -> list[Child]:
        """The workers of `servable` at `version`."""
        entry = dataclasses.replace(self.deployment.servable_defaults(servable), version=version)
        return plan.servable_workers(self.deployment, entry, self.workers_on_host)


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """What the controller serves and how it follows the servable directory."""

    servable_dir: Path
    mode: ControlMode = ControlMode.NONE
    policies: Policies = field(default_factory=Policies)
    #: The servables to serve (empty: every servable of the directory).
    servables: tuple[str, ...] = ()
    #: Explicit mode: the servables loaded at start.
    load: tuple[str, ...] = ()
    poll_s: float = 15.0

    @classmethod
    def from_deployment(cls, deployment: Deployment) -> ControlSettings:
        """From `msq serve`'s settings (servables as listed, not resolved); a servable listed
        with a version serves that version only."""
        if deployment.servable_dir is None:
            raise SettingsError("servable_dir: model control needs the servable directory")
        control = deployment.model_control
        policies = Policies.parse(control.version_policies)
        for servable in deployment.servables:
            if servable.version:
                policies.by_servable[servable.name] = VersionPolicy(
                    "specific", 0, (servable.version,)
                )
        return cls(
            deployment.servable_dir, ControlMode(control.mode), policies,
            tuple(servable.name for servable in deployment.servables), control.load,
            control.poll_s,
        )  # fmt: skip

    def wanted(self, found: dict[str, list[int]]) -> dict[str, list[int]]:
        """The versions to serve of each servable found: every one, or those named (by
        `--servable`, or by `--load-model` in explicit mode)."""
        explicit = self.mode is ControlMode.EXPLICIT
        names = set(self.load) if explicit else set(self.servables or found)
        return {
            name: self.policies.of(name).select(versions)
            for name, versions in found.items()
            if name in names
        }

    def initial(self) -> dict[str, list[int]]:
        """What to serve at start; ValueError when a named servable is missing."""
        found = scan(self.servable_dir)
        named = self.servables if self.mode is not ControlMode.EXPLICIT else self.load
        missing = sorted(set(named) - set(found))
        if missing:
            raise ValueError(f"no servable {', '.join(missing)} in {self.servable_dir}")
        if not found and self.mode is not ControlMode.EXPLICIT:
            raise ValueError(
                f"no servable (a folder with servable_config.py) in {self.servable_dir}"
            )
        return self.wanted(found)


def worker_plan(deployment: Deployment) -> tuple[ControlSettings, WorkerTemplate, list[Child]]:
    """`msq serve`'s model control settings, worker template and the workers to start with;
    SettingsError when there is nothing to serve."""
    settings = ControlSettings.from_deployment(deployment)
    try:
        initial = settings.initial()
    except ValueError as exc:
        raise SettingsError(f"servables: {exc}") from None
    resolved = deployment.resolved()
    per_version = {
        (name, version): len(resolved.servable_defaults(name).worker_devices())
        for name, versions in initial.items()
        for version in versions
    }
    template = WorkerTemplate(resolved, max(1, sum(per_version.values())))
    workers = [child for name, version in per_version for child in template.children(name, version)]
    return settings, template, workers


@dataclass(eq=False)
class Served:
    """The workers of one servable version; `unloading` once they drain."""

    children: list[Child]
    unloading: bool = False

    @property
    def state(self) -> tuple[str, str]:
        """Its repository state and reason."""
        if self.unloading:
            return "UNAVAILABLE", "unloading"
        return ("READY", "") if all(c.ready.is_set() for c in self.children) else ("LOADING", "")


class ModelController:
    """Starts and stops the workers of servable versions under a `Supervisor`."""

    def __init__(
        self,
        supervisor: Supervisor,
        settings: ControlSettings,
        template: WorkerTemplate,
        workers: list[Child],
        *,
        broker_frontend: str,
        start_timeout_s: float,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
        curve: CurveClient | None = None,
    ) -> None:
        """`workers` are those started already (labelled with their servable and version);
        the broker at `broker_frontend` is asked when new workers have registered."""
        self.supervisor = supervisor
        self.broker_frontend = broker_frontend
        self.curve = curve
        self.settings = settings
        self.template = template
        self.start_timeout_s = start_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.served: dict[tuple[str, int], Served] = {}
        for child in workers:
            key = (child.labels["servable"], int(child.labels["version"]))
            self.served.setdefault(key, Served([])).children.append(child)
        #: Versions whose workers failed to start: why, and the folder signature then.
        self.failed: dict[tuple[str, int], tuple[str, str]] = {}
        #: Poll mode: each version folder's signature at the last poll.
        self._seen: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()
        self._busy: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    # ------------------------------------------------------------------ repository commands

    def index(self) -> list[RepositoryModel]:
        """Every servable of the directory and every served version, with its state."""
        with self._lock:
            served = {key: entry.state for key, entry in self.served.items()}
            failed = dict(self.failed)
        names = sorted(set(scan(self.settings.servable_dir)) | {name for name, _ in served})
        models = []
        for name in names:
            versions = sorted({v for n, v in [*served, *failed] if n == name})
            for version in versions:
                known = served.get((name, version))
                state, reason = known or ("UNAVAILABLE", failed[name, version][0])
                models.append(RepositoryModel(name, str(version), state, reason))
            if not versions:
                models.append(RepositoryModel(name, "", "UNAVAILABLE", "unloaded"))
        return models

    def load(self, name: str) -> Failure | None:
        """Explicit mode: serve the versions of `name` its policy picks, once they are ready."""
        if self.settings.mode is not ControlMode.EXPLICIT:
            return Failure(ErrorKind.INVALID_INPUT, NOT_EXPLICIT)
        found = scan(self.settings.servable_dir)
        if name not in found:
            return Failure(
                ErrorKind.NOT_FOUND, f"failed to load '{name}': no servable '{name}' in the "
                "model repository",
            )  # fmt: skip
        versions = self.settings.policies.of(name).select(found[name])
        if not versions:
            return Failure(
                ErrorKind.NOT_FOUND, f"failed to load '{name}': no version folder matches its "
                f"version policy {self.settings.policies.of(name)} (found: {found[name]})",
            )  # fmt: skip
        return self.apply(name, versions, retry=True)

    def unload(self, name: str) -> Failure | None:
        """Explicit mode: stop serving `name` (its workers drain first)."""
        if self.settings.mode is not ControlMode.EXPLICIT:
            return Failure(ErrorKind.INVALID_INPUT, NOT_EXPLICIT)
        with self._lock:
            known = any(n == name for n, _ in self.served)
        if not known and name not in scan(self.settings.servable_dir):
            return Failure(
                ErrorKind.NOT_FOUND, f"failed to unload '{name}': no servable '{name}' in the "
                "model repository",
            )  # fmt: skip
        return self.apply(name, [])

    # ------------------------------------------------------------------ changes

    def poll(self, spawn: Callable[[Callable[[], object]], None]) -> None:
        """Poll mode: apply the directory's changes, each servable's in `spawn` (a thread) unless
        a change of that servable is under way."""
        found = self._settled(scan(self.settings.servable_dir))
        wanted = self.settings.wanted(found)
        with self._lock:
            for name, version in list(self.failed):
                if version not in found.get(name, []):  # its folder is gone: forget the failure
                    del self.failed[name, version]
            names = set(wanted) | {name for name, _ in self.served}
            current = {name: sorted(v for n, v in self.served if n == name) for name in names}
        for name in sorted(names):
            versions = wanted.get(name, [])
            if versions != current[name] and not self._busy[name].locked():
                spawn(functools.partial(self.apply, name, versions))

    def _settled(self, found: dict[str, list[int]]) -> dict[str, list[int]]:
        """The versions found, less new folders whose files changed since the last poll (still
        being copied: they count once they stay the same for a poll)."""
        settled: dict[str, list[int]] = {}
        for name, versions in found.items():
            settled[name] = []
            for version in versions:
                now = signature(self.settings.servable_dir / name / str(version))
                before = self._seen.get((name, version))
                self._seen[name, version] = now
                if now == before or (name, version) in self.served:
                    settled[name].append(version)
        return settled

    def apply(self, name: str, versions: list[int], *, retry: bool = False) -> Failure | None:
        """Serve exactly `versions` of `name`: start the new ones and wait until they are ready,
        then drain and stop the others. A version that failed to start is not retried until its
        folder changes (or `retry`)."""
        with self._busy[name]:
            with self._lock:
                new = [
                    v for v in versions
                    if (name, v) not in self.served and (retry or self._may_retry(name, v))
                ]  # fmt: skip
                old = [v for n, v in self.served if n == name and v not in versions]
                starting = {v: Served(self.template.children(name, v)) for v in new}
                for version, entry in starting.items():
                    self.served[name, version] = entry
                    self.failed.pop((name, version), None)
            problem = self._start(name, starting)
            for version in old:
                self._stop(name, version)
            return problem

    def _may_retry(self, name: str, version: int) -> bool:
        """A version never failed, or its folder changed since it failed."""
        failed = self.failed.get((name, version))
        folder = self.settings.servable_dir / name / str(version)
        return failed is None or failed[1] != signature(folder)

    def _start(self, name: str, starting: dict[int, Served]) -> Failure | None:
        children = [child for entry in starting.values() for child in entry.children]
        if not children:
            return None
        log.info("loading %s versions %s", name, sorted(starting))
        self.supervisor.add(*children)
        try:
            deadline = time.monotonic() + self.start_timeout_s
            self.supervisor.wait_ready(*children, timeout_s=self.start_timeout_s)
            self._wait_registered(children, deadline)
        except RuntimeError as exc:
            reason = f"failed to load '{name}': {exc}"
            last = [child.last_line for child in children if not child.alive and child.last_line]
            if last:
                reason = f"{reason}: {last[0]}"
            log.error("%s", reason)
            folder = self.settings.servable_dir / name
            for version in starting:
                self._stop(name, version)
                with self._lock:
                    self.failed[name, version] = (reason, signature(folder / str(version)))
            return Failure(ErrorKind.WORKER_UNAVAILABLE, reason)
        log.info("serving %s versions %s", name, sorted(starting))
        return None

    def _wait_registered(self, children: list[Child], deadline: float) -> None:
        """Wait until the broker lists every child among its workers (a worker says it is
        ready when it sent `Ready`, which may still be on its way); RuntimeError at `deadline`."""
        pids = {child.process.pid for child in children if child.process is not None}
        client = StatusClient([self.broker_frontend], 1.0, self.curve)
        try:
            while True:
                (view,) = client.query()
                if view.status is not None and pids <= {w.pid for w in view.status.workers}:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not register with the broker in time")
                time.sleep(0.05)
        finally:
            client.close()

    def _stop(self, name: str, version: int) -> None:
        with self._lock:
            entry = self.served[name, version]
            entry.unloading = True
        log.info("unloading %s version %d: draining %d workers", name, version, len(entry.children))
        for child in entry.children:
            self.supervisor.remove(child, self.drain_timeout_s)
        with self._lock:
            del self.served[name, version]
        log.info("unloaded %s version %d", name, version)
