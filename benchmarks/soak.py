"""The soak run: steady known-answer load, no faults, and every msq process's memory.

RSS of each of the launcher's msq processes (psutil; named by role, see
`msq.benchmarks.faults.msq_processes`) once the load runs, every `sample_every_s` (the
peak), and at the end; the drift is end minus start. A process whose pid changed was
restarted, which a soak must not see.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import psutil
from rich.table import Table

from msq.benchmarks.chaos import Load, LoadSettings
from msq.benchmarks.deployment import Deployment
from msq.benchmarks.tally import Counts, Window, tally

MB = 2**20


@dataclass(frozen=True, slots=True)
class Sample:
    """One process's resident memory at one time."""

    pid: int
    rss_mb: float


def rss_of(processes: dict[str, psutil.Process]) -> dict[str, Sample]:
    """Resident memory of each process, MB (processes gone meanwhile are left out)."""
    samples = {}
    for name, process in processes.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            samples[name] = Sample(process.pid, process.memory_info().rss / MB)
    return samples


@dataclass(frozen=True, slots=True)
class Drift:
    """A process's memory at the start and end of the soak."""

    name: str
    start: Sample | None
    end: Sample | None
    peak_mb: float

    @property
    def restarted(self) -> bool:
        return self.start is None or self.end is None or self.start.pid != self.end.pid

    @property
    def drift_mb(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end.rss_mb - self.start.rss_mb

    def as_dict(self) -> dict[str, object]:
        drift = self.drift_mb
        return {
            "name": self.name,
            "pid_start": None if self.start is None else self.start.pid,
            "pid_end": None if self.end is None else self.end.pid,
            "start_mb": None if self.start is None else round(self.start.rss_mb, 2),
            "end_mb": None if self.end is None else round(self.end.rss_mb, 2),
            "peak_mb": round(self.peak_mb, 2),
            "drift_mb": None if drift is None else round(drift, 2),
            "restarted": self.restarted,
        }


def drifts(samples: list[dict[str, Sample]]) -> list[Drift]:
    """Each process's drift from the first snapshot to the last, and its peak in between."""
    names = sorted({name for snapshot in samples for name in snapshot})
    return [
        Drift(
            name,
            samples[0].get(name),
            samples[-1].get(name),
            max((s[name].rss_mb for s in samples if name in s), default=0.0),
        )
        for name in names
    ]


def drift_table(rows: list[Drift]) -> Table:
    """The processes' memory as a rich table."""
    grid = Table(title="RSS of msq's processes (MB)")
    for column in ("process", "start", "end", "peak", "drift", "drift %"):
        grid.add_column(column, justify="left" if column == "process" else "right")
    for row in rows:
        drift = row.drift_mb
        start = row.start.rss_mb if row.start is not None else None
        grid.add_row(
            row.name + (" (restarted)" if row.restarted else ""),
            "-" if row.start is None else f"{row.start.rss_mb:.1f}",
            "-" if row.end is None else f"{row.end.rss_mb:.1f}",
            f"{row.peak_mb:.1f}",
            "-" if drift is None else f"{drift:+.1f}",
            "-" if drift is None or not start else f"{100 * drift / start:+.1f}",
        )
    return grid


@dataclass(slots=True)
class SoakResult:
    """The memory of each process and the requests' counts."""

    drifts: list[Drift]
    counts: Counts
    elapsed_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "elapsed_s": round(self.elapsed_s, 3),
            "processes": [drift.as_dict() for drift in self.drifts],
            "requests": self.counts.as_dict(),
        }


async def run_soak(
    deployment: Deployment, settings: LoadSettings, duration_s: float, sample_every_s: float
) -> SoakResult:
    """Run the load for `duration_s`, sampling every process's RSS."""
    load = Load(deployment, settings)
    await load.open()
    started = time.monotonic()
    load.start()
    samples = [rss_of(deployment.processes())]
    try:
        while (left := started + duration_s - time.monotonic()) > 0:
            await asyncio.sleep(min(sample_every_s, left))
            samples.append(rss_of(deployment.processes()))
    finally:
        await load.stop()
    elapsed = time.monotonic() - started
    counts = tally([Window("soak", 0.0)], load.outcomes, started)
    return SoakResult(drifts(samples), counts, elapsed)
