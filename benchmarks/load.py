"""Load generators: closed loop (N requests in flight) and open loop (Poisson arrivals).

A target is an async callable that sends one request and returns the number of instances
that succeeded; it raises `CallError` (or any exception) when the request failed. Both
generators warm up first (results discarded), then measure for a duration or a count of
requests, and return a `LoadResult`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

Target = Callable[[], Awaitable[int]]
Progress = Callable[[int], None]

#: Percentiles reported for every run.
PERCENTILES = (50, 90, 99)


class CallError(Exception):
    """A request that failed; `kind` names the failure (an msq `ErrorKind` value or a status)."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """How to drive a target.

    `concurrency` is the number of requests in flight (closed loop), or the cap on requests
    in flight (open loop, where `rate` requests/s arrive as a Poisson process). The
    measurement stops after `duration_s` or `count` requests, whichever comes first.
    """

    concurrency: int = 1
    duration_s: float = 5.0
    count: int | None = None
    warmup_s: float = 1.0
    rate: float | None = None

    @property
    def mode(self) -> str:
        """ "open" when an arrival rate is set, else "closed"."""
        return "closed" if self.rate is None else "open"


@dataclass(slots=True)
class _Recorder:
    """Collects one measured phase."""

    progress: Progress | None = None
    latencies_s: list[float] = field(default_factory=list)
    instances: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    async def call(self, target: Target, start: float | None = None) -> None:
        started = time.perf_counter() if start is None else start
        try:
            succeeded = await target()
        except CallError as exc:
            self.errors[exc.kind] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is counted, by its type
            self.errors[type(exc).__name__] += 1
        else:
            self.instances += succeeded
            self.latencies_s.append(time.perf_counter() - started)
        if self.progress is not None:
            self.progress(1)

    @property
    def requests(self) -> int:
        return len(self.latencies_s) + sum(self.errors.values())


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one measured phase achieved; latencies are of successful requests only."""

    mode: str
    concurrency: int
    rate: float | None
    elapsed_s: float
    requests: int
    succeeded: int
    instances: int
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def requests_per_s(self) -> float:
        return self.succeeded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def instances_per_s(self) -> float:
        return self.instances / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "elapsed_s": round(self.elapsed_s, 4),
            "requests": self.requests,
            "succeeded": self.succeeded,
            "instances": self.instances,
            "requests_per_s": round(self.requests_per_s, 2),
            "instances_per_s": round(self.instances_per_s, 2),
            "errors": dict(self.errors),
            "latency_ms": self.latency_ms,
        }


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds (zeros when nothing succeeded)."""
    if not latencies_s:
        return dict.fromkeys((*(f"p{p}" for p in PERCENTILES), "max", "mean"), 0.0)
    values = np.asarray(latencies_s) * 1000.0
    summary = {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES}
    summary["max"] = float(values.max())
    summary["mean"] = float(values.mean())
    return {key: round(value, 4) for key, value in summary.items()}


async def _closed_phase(
    target: Target, recorder: _Recorder, concurrency: int, duration_s: float, count: int | None
) -> float:
    deadline = time.perf_counter() + duration_s
    budget = math.inf if count is None else count
    issued = 0

    async def lane() -> None:
        nonlocal issued
        while time.perf_counter() < deadline and issued < budget:
            issued += 1
            await recorder.call(target)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _open_phase(
    target: Target,
    *,
    recorder: _Recorder,
    rate: float,
    max_in_flight: int,
    duration_s: float,
    count: int | None,
    rng: random.Random,
) -> float:
    """Requests arrive as a Poisson process; latency counts from the scheduled arrival, so a
    slow server is not hidden by a generator that waits for it (no coordinated omission).
    Arrivals beyond `max_in_flight` outstanding requests are counted as `client_overload`."""
    started = time.perf_counter()
    deadline = started + duration_s
    budget = math.inf if count is None else count
    tasks: set[asyncio.Task[None]] = set()
    arrival = started
    issued = 0
    while issued < budget:
        arrival += rng.expovariate(rate)
        if arrival >= deadline:
            break
        delay = arrival - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        issued += 1
        if len(tasks) >= max_in_flight:
            recorder.errors["client_overload"] += 1
            continue
        task = asyncio.create_task(recorder.call(target, start=arrival))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return time.perf_counter() - started


async def run_load(
    target: Target, spec: LoadSpec, progress: Progress | None = None, seed: int = 0
) -> LoadResult:
    """Warm up for `spec.warmup_s`, then measure `target` under `spec` and summarize."""

    async def phase(recorder: _Recorder, duration_s: float, count: int | None) -> float:
        if spec.rate is None:
            return await _closed_phase(target, recorder, spec.concurrency, duration_s, count)
        rng = random.Random(seed)
        return await _open_phase(
            target,
            recorder=recorder,
            rate=spec.rate,
            max_in_flight=spec.concurrency,
            duration_s=duration_s,
            count=count,
            rng=rng,
        )

    if spec.warmup_s > 0:
        await phase(_Recorder(), spec.warmup_s, None)
    recorder = _Recorder(progress=progress)
    elapsed = await phase(recorder, spec.duration_s, spec.count)
    return LoadResult(
        mode=spec.mode,
        concurrency=spec.concurrency,
        rate=spec.rate,
        elapsed_s=elapsed,
        requests=recorder.requests,
        succeeded=len(recorder.latencies_s),
        instances=recorder.instances,
        errors=dict(recorder.errors),
        latency_ms=latency_summary(recorder.latencies_s),
    )
