"""The compute floor: a scenario's work called in-process, one call after the other, driven
by the same load generator as the servers (closed loop, one in flight).

    python -m msq.benchmarks.direct --scenario mlp --batch 32 --duration 3

Prints the run's `LoadResult` as one JSON line on stdout. Runs in its own process so that
MindSpore's threads and memory stay out of the harness.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from msq.benchmarks.compute import load_compute
from msq.benchmarks.load import LoadSpec, run_load
from msq.benchmarks.scenarios import DEFAULT_THREADS, SCENARIOS


async def measure(scenario: str, batch: int, spec: LoadSpec, threads: int) -> dict[str, object]:
    """Measure `batch`-instance calls of the scenario's work."""
    compute = load_compute(scenario, threads)
    instances = SCENARIOS[scenario].instances(batch)

    async def call() -> int:
        return len(compute(instances))

    return (await run_load(call, spec)).as_dict()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--batch", type=int, default=1, help="instances per call")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    args = parser.parse_args(argv)
    spec = LoadSpec(concurrency=1, duration_s=args.duration, warmup_s=args.warmup)
    print(json.dumps(asyncio.run(measure(args.scenario, args.batch, spec, args.threads))))


if __name__ == "__main__":
    main()
