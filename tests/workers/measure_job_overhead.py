"""Measure a worker's own time per job outside the model (the benchmark `mlp`, one process).

Times, for each job of N instances of `mlp.predict`, the worker's whole handling of it without
sockets (decode the job's frames, run the method, encode the result's frames) and, inside it,
the model calls (the graph's runs on padded arrays, outputs as NumPy); the difference is the
worker's own cost. Medians and 10th percentiles over the jobs, so that a loaded machine
disturbs them less. Run (under a minute on 2 cores):
    python tests/workers/measure_job_overhead.py [--instances 32] [--jobs 3000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from msq.proto import wire
from msq.proto.codec import to_wire
from msq.proto.columns import stack
from msq.proto.messages import Job
from msq.workers.servable import load_servable

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=3000)
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
    job = Job(1, "predict", stack(instances), 60_000.0)
    frames = [bytes(memoryview(frame)) for frame in wire.encode(job)]

    model = next(iter(servable.methods["predict"].models.values()))
    call = model._call  # timed apart
    in_model = [0.0]

    def timed_call(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            in_model[0] += time.perf_counter() - started

    model._call = timed_call  # type: ignore[method-assign]
    totals, models = [], []
    for number in range(50 + args.jobs):
        in_model[0] = 0.0
        started = time.perf_counter()
        received = wire.decode(frames)
        assert isinstance(received, Job)
        wire.encode(servable.execute(received))
        if number >= 50:  # the first ones warm up
            totals.append((time.perf_counter() - started) * 1e6)
            models.append(in_model[0] * 1e6)
    own = sorted(total - inside for total, inside in zip(totals, models, strict=True))
    print(
        f"{args.instances}-instance jobs, {args.jobs} jobs: handled in "
        f"{statistics.median(totals):.0f} µs, model calls {statistics.median(models):.0f} µs, "
        f"the worker's own {statistics.median(own):.0f} µs (p10 {own[len(own) // 10]:.0f} µs) "
        f"= {statistics.median(own) / args.instances:.1f} µs per instance (medians)"
    )


if __name__ == "__main__":
    main()
