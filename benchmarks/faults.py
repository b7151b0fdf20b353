"""Faults for the chaos tool: a seeded schedule, msq's processes by role, and the signals.

Kinds: `worker-kill` (SIGKILL a worker), `worker-stop` (SIGSTOP a worker, SIGCONT after a set
time), `broker-kill`, `grpc-kill` (the gRPC gateway process) and `rest-worker-kill` (one
gunicorn worker of the REST gateway). The schedule is a pure function of its settings and seed:
fault times (one per interval, a seeded jitter of up to a fifth of it), kinds (each kind once
per round, in a seeded order) and which process of the role each fault hits (a seeded pick
among the role's processes in name order), so a run can be repeated.
"""

from __future__ import annotations

import contextlib
import enum
import os
import random
import signal
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

#: Commands (console scripts) of msq's processes and their roles.
COMMAND_ROLES = {
    "msq-broker": "broker",
    "msq-worker": "worker",
    "msq-grpc-gateway": "grpc",
    "msq-rest-gateway": "rest",
}
#: A gunicorn worker: a child of the REST gateway's master.
REST_WORKER = "rest worker"


class FaultKind(enum.StrEnum):
    """What a fault does, to which role."""

    WORKER_KILL = "worker-kill"
    WORKER_STOP = "worker-stop"
    BROKER_KILL = "broker-kill"
    GRPC_KILL = "grpc-kill"
    REST_WORKER_KILL = "rest-worker-kill"

    @property
    def role(self) -> str:
        """The role of the processes this fault may hit."""
        return {
            FaultKind.WORKER_KILL: "worker",
            FaultKind.WORKER_STOP: "worker",
            FaultKind.BROKER_KILL: "broker",
            FaultKind.GRPC_KILL: "grpc",
            FaultKind.REST_WORKER_KILL: REST_WORKER,
        }[self]


@dataclass(frozen=True, slots=True)
class Fault:
    """A scheduled fault: when (seconds into the run), what, and which process of the role
    (`pick` in [0, 1) scales to an index of the role's processes in name order)."""

    at_s: float
    kind: FaultKind
    pick: float

    def as_dict(self) -> dict[str, object]:
        return {"at_s": self.at_s, "kind": self.kind.value, "pick": round(self.pick, 6)}


def make_schedule(
    kinds: Sequence[FaultKind], count: int, first_at_s: float, interval_s: float, seed: int
) -> list[Fault]:
    """`count` faults, the first at `first_at_s` (+ jitter), then one per `interval_s`."""
    if not kinds or count < 0 or first_at_s < 0 or interval_s <= 0:
        raise ValueError("a schedule needs kinds, count >= 0, first_at_s >= 0, interval_s > 0")
    rng = random.Random(seed)
    order: list[FaultKind] = []
    while len(order) < count:
        round_ = list(dict.fromkeys(kinds))
        rng.shuffle(round_)
        order += round_
    return [
        Fault(
            round(first_at_s + index * interval_s + rng.uniform(0, interval_s / 5), 3),
            kind,
            rng.random(),
        )
        for index, kind in enumerate(order[:count])
    ]


def _command_role(arguments: list[str]) -> str | None:
    names = (os.path.basename(argument) for argument in arguments[:2])
    return next((COMMAND_ROLES[name] for name in names if name in COMMAND_ROLES), None)


def role_of(process: psutil.Process) -> str | None:
    """The role of one of msq's processes (None: not one of msq's). A child of one of msq's
    processes is a gunicorn worker under the REST gateway, else "<role> child"."""
    try:
        role = _command_role(process.cmdline())
        parent = process.parent()
        parent_role = None if parent is None else _command_role(parent.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if parent_role == "rest":
        return REST_WORKER
    return role if parent_role is None else f"{parent_role} child"


def msq_processes(launcher: psutil.Process) -> dict[str, psutil.Process]:
    """The launcher's msq descendants by name: "broker", "worker #1", "grpc", "rest",
    "rest worker #1", ... (numbered by start time where a role has several processes)."""
    by_role: dict[str, list[psutil.Process]] = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        for process in launcher.children(recursive=True):
            role = role_of(process)
            if role is not None:
                by_role.setdefault(role, []).append(process)
    named: dict[str, psutil.Process] = {}
    for role, processes in by_role.items():
        processes.sort(key=_started)
        for index, process in enumerate(processes, 1):
            named[role if role in ("broker", "grpc", "rest") else f"{role} #{index}"] = process
    return named


def _started(process: psutil.Process) -> float:
    try:
        return float(process.create_time())
    except psutil.NoSuchProcess:
        return 0.0


def pick_target(fault: Fault, processes: dict[str, psutil.Process]) -> str | None:
    """The name of the process `fault` hits (None: no process has its role now)."""
    names = sorted(
        (name for name in processes if name.partition(" #")[0] == fault.kind.role),
        key=lambda name: int(name.partition(" #")[2] or 0),
    )
    return names[int(fault.pick * len(names))] if names else None


def inject(fault: Fault, process: psutil.Process) -> None:
    """Send the fault's signal (SIGSTOP for `worker-stop`: the caller sends SIGCONT later)."""
    signum = signal.SIGSTOP if fault.kind is FaultKind.WORKER_STOP else signal.SIGKILL
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(signum)


def resume(process: psutil.Process) -> None:
    """SIGCONT a stopped process (gone already: nothing to do)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(signal.SIGCONT)
