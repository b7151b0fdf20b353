"""Run a benchmark plan: start each system once per scenario, drive every run's path with
the load generator, and collect results, the broker's batching statistics and memory."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from msq.benchmarks.clients import open_client
from msq.benchmarks.load import LoadSpec, run_load
from msq.benchmarks.procs import ServerStartError
from msq.benchmarks.scenarios import SCENARIOS, Scenario
from msq.benchmarks.systems import System, SystemUnavailableError, start_system
from msq.gateways.core.link import BrokerLink


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One measurement: a scenario's method over one path of one system.

    `batch` is the instances per request; `rate` (requests/s) makes the run open-loop, with
    `concurrency` as the cap on requests in flight.
    """

    scenario: str
    system: str
    path: str
    concurrency: int
    batch: int = 1
    rate: float | None = None

    @property
    def label(self) -> str:
        load = f"c={self.concurrency}" if self.rate is None else f"rate={self.rate:g}/s"
        return f"{self.scenario} {self.system} {self.path} {load} b={self.batch}"


@dataclass(frozen=True, slots=True)
class Options:
    """How long each run lasts and where logs go."""

    duration_s: float = 3.0
    warmup_s: float = 1.0
    count: int | None = None
    log_dir: Path = Path("benchmarks/results/logs")
    progress: bool = True


def _groups(plan: list[RunSpec]) -> Iterator[tuple[tuple[str, str], list[RunSpec]]]:
    """Runs grouped by (scenario, system), in order of first appearance."""
    groups: dict[tuple[str, str], list[RunSpec]] = {}
    for spec in plan:
        groups.setdefault((spec.scenario, spec.system), []).append(spec)
    yield from groups.items()


def input_bytes(scenario: Scenario) -> int:
    """Bytes of one instance's inputs."""
    instance = scenario.instances(1)[0]
    return sum(len(v) if isinstance(v, bytes) else v.nbytes for v in instance.values())


def _route(stats: dict[str, Any] | None, scenario: Scenario) -> dict[str, Any]:
    for route in (stats or {}).get("routes", []):
        if route["servable"] == scenario.servable and route["method"] == scenario.method:
            return dict(route)
    return {}


def batching_summary(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """The broker's batching over a run, from its route statistics before and after
    (`compute_ms_sum`: the worker's time in the method's execution, all jobs together;
    `compute_cpu_ms_sum`: the worker process's CPU time meanwhile)."""
    sizes_after = after.get("job_sizes", {})
    sizes_before = before.get("job_sizes", {})
    jobs = {int(n): c - sizes_before.get(n, 0) for n, c in sizes_after.items()}
    executions = sum(jobs.values())
    delay_after = after.get("queue_delay_ms", {})
    delay_before = before.get("queue_delay_ms", {})
    delays = delay_after.get("count", 0) - delay_before.get("count", 0)
    delay_sum = delay_after.get("sum", 0.0) - delay_before.get("sum", 0.0)
    compute_after, compute_before = after.get("compute_ms", {}), before.get("compute_ms", {})
    computes = compute_after.get("count", 0) - compute_before.get("count", 0)
    compute_sum = compute_after.get("sum", 0.0) - compute_before.get("sum", 0.0)
    cpu_after, cpu_before = after.get("compute_cpu_ms", {}), before.get("compute_cpu_ms", {})
    cpu_sum = cpu_after.get("sum", 0.0) - cpu_before.get("sum", 0.0)
    return {
        "jobs": executions,
        "mean_job_size": round(sum(n * c for n, c in jobs.items()) / executions, 3)
        if executions
        else 0.0,
        "queue_delay_ms_mean": round(delay_sum / delays, 4) if delays else 0.0,
        "compute_ms_mean": round(compute_sum / computes, 4) if computes else 0.0,
        "compute_ms_sum": round(compute_sum, 3),
        "compute_cpu_ms_sum": round(cpu_sum, 3),
    }


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process used between two readings of `System.cpu_s`."""
    return {name: round(after[name] - before.get(name, 0.0), 4) for name in after}


async def _broker_stats(system: System) -> dict[str, Any] | None:
    if system.endpoints.broker is None or not system.name.startswith("msq"):
        return None
    link = BrokerLink(system.endpoints.broker)
    try:
        status = await link.status(timeout_s=5.0)
    finally:
        link.close()
    return None if status is None else dict(status.stats)


async def _direct(spec: RunSpec, options: Options) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "msq.benchmarks.direct",
        "--scenario",
        spec.scenario,
        "--batch",
        str(spec.batch),
        "--duration",
        str(options.duration_s),
        "--warmup",
        str(options.warmup_s),
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with {process.returncode}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


class Runner:
    """Executes a plan and accumulates `results` (JSON-ready)."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.runs: list[dict[str, Any]] = []
        self.memory: dict[str, dict[str, dict[str, float]]] = {}
        self.skipped: list[str] = []
        self.failures: list[str] = []

    def _say(self, text: str) -> None:
        tqdm.write(text, file=sys.stderr)

    def _record(self, spec: RunSpec, result: dict[str, Any], **extra: Any) -> None:
        scenario = SCENARIOS[spec.scenario]
        megabytes = input_bytes(scenario) * float(result["instances_per_s"]) / 1e6
        entry = {**asdict(spec), **result, "mb_per_s": round(megabytes, 3), **extra}
        self.runs.append(entry)
        latency = result["latency_ms"]
        self._say(
            f"{spec.label:<44} {result['requests_per_s']:>9.1f} req/s "
            f"{result['instances_per_s']:>10.1f} inst/s  p50 {latency['p50']:.2f} ms  "
            f"p99 {latency['p99']:.2f} ms  errors {result['errors'] or 0}"
        )

    async def _measure(self, system: System, spec: RunSpec) -> None:
        scenario = SCENARIOS[spec.scenario]
        options = self.options
        load = LoadSpec(
            concurrency=spec.concurrency,
            duration_s=options.duration_s,
            count=options.count,
            warmup_s=0.0,
            rate=spec.rate,
        )
        warmup = dataclasses.replace(load, duration_s=options.warmup_s, count=None)
        client = await open_client(
            spec.path,
            endpoints=system.endpoints,
            servable=scenario.servable,
            method=scenario.method,
            outputs=scenario.outputs,
            instances=scenario.instances(spec.batch),
        )
        bar = tqdm(desc=spec.label, unit="req", disable=not options.progress, leave=False)
        try:
            if options.warmup_s > 0:
                await run_load(client.call, warmup)
            before = _route(await _broker_stats(system), scenario)
            cpu_before = system.cpu_s()
            result = (await run_load(client.call, load, progress=bar.update)).as_dict()
            cpu_after = system.cpu_s()
        finally:
            bar.close()
            await client.close()
        after = _route(await _broker_stats(system), scenario)
        extra: dict[str, Any] = {"batching": batching_summary(before, after)} if after else {}
        if system.name.startswith("msq"):
            extra["cpu_s"] = cpu_used(cpu_before, cpu_after)
        self._record(spec, result, **extra)
        sizes = self.memory.setdefault(spec.scenario, {}).setdefault(system.name, {})
        for label, rss in system.memory().items():
            sizes[label] = max(rss, sizes.get(label, 0.0))

    async def run(self, plan: list[RunSpec]) -> None:
        """Run every spec of the plan, one system at a time."""
        for (scenario_name, system_name), specs in _groups(plan):
            if system_name == "direct":
                for spec in specs:
                    self._record(spec, await _direct(spec, self.options))
                continue
            try:
                system = start_system(system_name, SCENARIOS[scenario_name], self.options.log_dir)
            except SystemUnavailableError as exc:
                self.skipped.append(f"{scenario_name}/{system_name}: {exc}")
                self._say(f"skipped {scenario_name} {system_name}: {exc}")
                continue
            except ServerStartError as exc:
                self.failures.append(f"{scenario_name}/{system_name}: {exc}")
                self._say(f"FAILED to start {scenario_name} {system_name}: {exc}")
                continue
            try:
                for spec in specs:
                    await self._measure(system, spec)
            finally:
                system.stop()
