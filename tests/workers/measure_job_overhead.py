"""Measure a worker's own time per job outside the model (the benchmark `mlp`, one process).

Times, for jobs of N instances of `mlp.predict`: the worker's whole handling of a job without
sockets (decode the job's frames, run the method, encode the result's frames), and the model
call alone on the same padded batch (the graph's run on prepared arrays, outputs as NumPy).
The difference is the worker's own cost. Run (about a minute on 2 cores):
    python tests/workers/measure_job_overhead.py [--instances 32] [--jobs 2000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from msq.proto import wire
from msq.proto.codec import to_wire
from msq.proto.messages import Job
from msq.workers.servable import load_servable

REPO = Path(__file__).resolve().parents[2]


def _per_job_us(run: Callable[[], object], jobs: int, rounds: int = 5) -> float:
    """The median over `rounds` of the mean µs per call of `run`, `jobs` calls per round."""
    means = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(jobs):
            run()
        means.append((time.perf_counter() - started) / jobs * 1e6)
    return statistics.median(means)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="msq-overhead-"))
    shutil.copytree(REPO / "benchmarks" / "servables", root, dirs_exist_ok=True)
    out = root / "mlp" / "1" / "mlp.mindir"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "models" / "export_mlp.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    servable = load_servable(root, "mlp")
    rng = np.random.default_rng(0)
    instances = [
        {"x": to_wire(rng.standard_normal(784).astype(np.float32))} for _ in range(args.instances)
    ]
    columnar = "columns" in Job.__dataclass_fields__
    if columnar:
        from msq.proto.columns import stack

        job = Job(1, "predict", stack(instances), 60_000.0)
    else:
        job = Job(1, "predict", instances, 60_000.0)  # type: ignore[arg-type]
    frames = [bytes(memoryview(frame)) for frame in wire.encode(job)]

    def handle() -> object:
        received = wire.decode(frames)
        assert isinstance(received, Job)
        return wire.encode(servable.execute(received))

    runner = servable.methods["predict"]
    model = next(iter(runner.models.values()))
    graph = model.subgraphs[0]
    size = next(size for size in graph.sizes if size >= args.instances)
    batch = np.zeros((size, 784), np.float32)

    def model_alone() -> object:
        return model._call(graph, [batch])

    for _ in range(50):  # warm
        handle()
        model_alone()
    job_us = _per_job_us(handle, args.jobs)
    model_us = _per_job_us(model_alone, args.jobs)
    shape = "columns" if columnar else "instances"
    print(
        f"{args.instances}-instance jobs ({shape}): job handled {job_us:.1f} µs, model alone "
        f"{model_us:.1f} µs, worker's own {job_us - model_us:.1f} µs per job "
        f"({(job_us - model_us) / args.instances:.2f} µs per instance)"
    )


if __name__ == "__main__":
    main()
