"""The distributed example against the same model in one process: throughput, latency, memory.

    python -m msq.benchmarks.distributed [--duration S] [--concurrency N] [--batch B]
        [--out benchmarks/results/distributed.json]

For each of `tp_mlp` (the 64-256-16 MLP sharded over 2 ranks: one worker, MindSpore's
scheduler, 2 rank processes) and `tp_mlp_single` (the same model in the worker's process), it
starts a broker and a worker, drives the broker link with N requests in flight of B instances
each (closed loop, after a warm-up), and samples the resident memory of the worker and of each
rank process; it prints a table and writes the numbers as JSON. Not a test: numbers depend on
the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from msq.benchmarks import procs
from msq.benchmarks.clients import Endpoints, open_client
from msq.benchmarks.load import LoadSpec, run_load
from msq.benchmarks.report import machine

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "servables"
SERVABLES = ("tp_mlp", "tp_mlp_single")


def _role(process: psutil.Process) -> str | None:
    """ "rank N", "scheduler" or "worker" for msq's processes of a servable, else None."""
    command = process.cmdline()
    if "msq.workers.distributed.rank" in command:
        return f"rank {command[command.index('--rank') + 1]}"
    if "msq.workers.distributed.scheduler" in command:
        return "scheduler"
    if "msq.workers.cli" in command:
        return "worker"
    return None


class PeakMemory:
    """Samples the peak RSS (MB) of a worker and its rank processes in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            try:
                root = psutil.Process(self.pid)
                for process in [root, *root.children(recursive=True)]:
                    role = _role(process)
                    if role is not None:
                        size = process.memory_info().rss / 2**20
                        self.peak_mb[role] = round(max(size, self.peak_mb.get(role, 0.0)), 1)
            except psutil.NoSuchProcess:
                pass
            if self._stop.wait(0.2):
                return


async def _drive(frontend: str, servable: str, spec: LoadSpec, batch: int) -> dict[str, Any]:
    rows = np.random.default_rng(0).standard_normal((batch, 64)).astype(np.float32)
    client = await open_client(
        "link",
        endpoints=Endpoints(broker=frontend),
        servable=servable,
        method="predict",
        outputs=("y",),
        instances=[{"x": row} for row in rows],
    )
    try:
        return (await run_load(client.call, spec)).as_dict()
    finally:
        await client.close()


def measure(servable: str, spec: LoadSpec, batch: int, log_dir: Path) -> dict[str, Any]:
    """Serve `servable` with a broker and a worker, drive it, and report the run."""
    frontend = f"tcp://127.0.0.1:{procs.free_port()}"
    backend = f"tcp://127.0.0.1:{procs.free_port()}"
    broker = procs.start(
        "broker",
        [sys.executable, "-m", "msq.broker.cli", "--frontend", frontend, "--backend", backend],
        log_dir,
    )
    worker = procs.start(
        f"worker-{servable}",
        [sys.executable, "-m", "msq.workers.cli", "--servable-dir", str(EXAMPLES),
         "--servable", servable, "--broker", backend, "--threads", "1"],
        log_dir,
        ready_line="msq-worker ready",
    )  # fmt: skip
    try:
        procs.wait_ready([worker])
        with PeakMemory(worker.popen.pid) as memory:
            run = asyncio.run(_drive(frontend, servable, spec, batch))
        return {"servable": servable, "batch": batch, **run, "peak_rss_mb": memory.peak_mb}
    finally:
        procs.stop([worker, broker])


def table(runs: list[dict[str, Any]]) -> str:
    """The runs as a Markdown table."""
    lines = [
        "| servable | batch | in flight | requests/s | instances/s | p50 ms | p99 ms | errors "
        "| peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        rss = ", ".join(f"{role} {mb:.0f}" for role, mb in sorted(run["peak_rss_mb"].items()))
        latency = run["latency_ms"]
        lines.append(
            f"| {run['servable']} | {run['batch']} | {run['concurrency']} | "
            f"{run['requests_per_s']:.0f} | {run['instances_per_s']:.0f} | {latency['p50']:.2f} "
            f"| {latency['p99']:.2f} | {sum(run['errors'].values())} | {rss} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run both servables and print the table; the JSON goes to `--out`."""
    parser = argparse.ArgumentParser(prog="python -m msq.benchmarks.distributed",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8],
                        help="requests in flight (one run per value)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=1, help="instances per request")
    parser.add_argument("--out", type=Path, help="write the runs as JSON here")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="msq-bench-distributed-") as scratch:
        for servable in SERVABLES:
            for concurrency in args.concurrency:
                spec = LoadSpec(concurrency, args.duration, warmup_s=args.warmup)
                runs.append(measure(servable, spec, args.batch, Path(scratch)))
    print(table(runs))
    if args.out is not None:
        document = {"command": ["python", "-m", "msq.benchmarks.distributed", *sys.argv[1:]],
                    "machine": machine(), "runs": runs}  # fmt: skip
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
