"""The chaos run: known-answer load through both gateways while faults hit msq's processes.

`Load` keeps `concurrency` requests in flight on each path (`msq.benchmarks.probes`); a lane
that got a failure pauses `failure_pause_s` before its next request, so a gateway that is down
is not hammered and its failures stay countable. `run_chaos` injects the scheduled faults
(`msq.benchmarks.faults`) and counts every request in the window it was sent in
(`msq.benchmarks.tally`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import psutil

from msq.benchmarks.deployment import Deployment
from msq.benchmarks.faults import Fault, FaultKind, inject, pick_target, resume
from msq.benchmarks.probes import PATHS, Probe, open_probe
from msq.benchmarks.tally import Counts, Outcome, Window, tally

#: How long the load may take to get its first right answer on every path.
WARM_UP_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """The load: which paths, requests in flight per path, each request's deadline."""

    paths: tuple[str, ...] = PATHS
    concurrency: int = 4
    deadline_s: float = 5.0
    seed: int = 0
    failure_pause_s: float = 0.1

    def as_dict(self) -> dict[str, object]:
        return {
            "paths": list(self.paths),
            "concurrency_per_path": self.concurrency,
            "deadline_s": self.deadline_s,
            "seed": self.seed,
            "failure_pause_s": self.failure_pause_s,
        }


@dataclass(slots=True)
class Load:
    """Closed-loop lanes on every path; `outcomes` collects what they saw."""

    deployment: Deployment
    settings: LoadSettings
    outcomes: list[Outcome] = field(default_factory=list)
    _probes: list[Probe] = field(default_factory=list)
    _lanes: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self) -> None:
        """Open each path's clients and wait until every path answers right once."""
        for path in self.settings.paths:
            for lane in range(self.settings.concurrency):
                self._probes.append(
                    open_probe(
                        path,
                        grpc_address=self.deployment.grpc,
                        rest_url=self.deployment.rest,
                        deadline_s=self.settings.deadline_s,
                        seed=self.settings.seed * 1000 + lane,
                    )
                )
        try:
            await self._first_answers()
        except BaseException:
            await self._close()
            raise

    async def _first_answers(self) -> None:
        give_up = time.monotonic() + WARM_UP_TIMEOUT_S
        for path in self.settings.paths:
            probe = next(p for p in self._probes if p.path == path)
            while (outcome := await probe.send()).status != "ok":
                if time.monotonic() > give_up:
                    raise RuntimeError(f"{path} gives no right answer: {outcome}")
                await asyncio.sleep(0.5)

    def start(self) -> None:
        """Start every lane."""
        self._lanes = [asyncio.create_task(self._lane(probe)) for probe in self._probes]

    async def _lane(self, probe: Probe) -> None:
        while not self._stopping.is_set():
            outcome = await probe.send()
            self.outcomes.append(outcome)
            if outcome.status == "failed":
                await asyncio.sleep(self.settings.failure_pause_s)

    async def stop(self) -> None:
        """Let each lane finish its request in flight, then close the clients."""
        self._stopping.set()
        await asyncio.gather(*self._lanes)
        await self._close()

    async def _close(self) -> None:
        for probe in self._probes:
            await probe.close()


@dataclass(slots=True)
class ChaosResult:
    """The windows (before faults, then one per fault), their totals, and the schedule."""

    windows: list[Window]
    totals: Counts
    schedule: list[Fault]
    elapsed_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "schedule": [fault.as_dict() for fault in self.schedule],
            "elapsed_s": round(self.elapsed_s, 3),
            "windows": [window.as_dict() for window in self.windows],
            "totals": self.totals.as_dict(),
        }


async def _resume_after(process: psutil.Process, stop_s: float) -> None:
    try:
        await asyncio.sleep(stop_s)
    finally:
        resume(process)


async def run_chaos(
    deployment: Deployment,
    settings: LoadSettings,
    schedule: list[Fault],
    *,
    stop_s: float,
    duration_s: float,
) -> ChaosResult:
    """Run the load for `duration_s` while `schedule`'s faults happen (a stopped worker is
    continued after `stop_s`); count the outcomes per fault window."""
    load = Load(deployment, settings)
    await load.open()
    windows = [Window("before faults", 0.0)]
    resumes: list[asyncio.Task[None]] = []
    started = time.monotonic()
    load.start()
    try:
        for fault in schedule:
            await asyncio.sleep(max(0.0, started + fault.at_s - time.monotonic()))
            processes = deployment.processes()
            target = pick_target(fault, processes)
            name = fault.kind.value
            if fault.kind is FaultKind.WORKER_STOP:
                name = f"{name} {stop_s:g} s"
            windows.append(Window(name, time.monotonic() - started, target or "(none found)"))
            if target is not None:
                inject(fault, processes[target])
                if fault.kind is FaultKind.WORKER_STOP:
                    resumes.append(asyncio.create_task(_resume_after(processes[target], stop_s)))
        await asyncio.sleep(max(0.0, started + duration_s - time.monotonic()))
    finally:
        for task in resumes:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await load.stop()
    elapsed = time.monotonic() - started
    totals = tally(windows, load.outcomes, started)
    return ChaosResult(windows, totals, schedule, elapsed)
