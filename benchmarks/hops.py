"""T7 — cost per hop: the CPU each msq process spends per request and per instance.

The harness reads every server process's CPU time (user + system, as the kernel accounts it in
/proc/PID/stat, a gunicorn master's workers included) at the start and the end of a run's
measured window (`cpu_s` in the run). The hops of a run are the gateway serving its path (none
over `link`), the broker and the worker; the worker's `compute` is the CPU time the worker
process used while it executed the method (the model, its kernel threads and the method's own
stages: `compute_cpu_ms` of the broker's route statistics), so `worker_outside` is what the
worker spends on everything else (receiving, decoding, batching, encoding, sending).
Resolution: the kernel counts in ticks (10 ms), so a run must be long enough for each process
to use many ticks (a 3 s run of a busy process uses ~100-300).
"""

from __future__ import annotations

from typing import Any

from msq.benchmarks.targets import HOP_RUNS, RunKey, find_run

#: The gateway process (as the harness names it) that serves each path; `link` has none.
GATEWAYS = {
    "ms-grpc": "grpc-gateway",
    "v2-grpc": "grpc-gateway",
    "ms-rest": "rest-gateway",
    "v2-rest": "rest-gateway",
}
#: T7's columns, in order, with their table headings: CPU by hop, the worker's compute, the
#: rest of the worker, and the sum of the hops.
HOPS = {
    "gateway": "gateway",
    "broker": "broker",
    "worker": "worker",
    "compute": "compute",
    "worker_outside": "worker - compute",
    "total": "total",
}


def hop_seconds(run: dict[str, Any]) -> dict[str, float | None]:
    """CPU seconds of each hop over the run's window (`gateway` None over `link`); `total` is
    gateway + broker + worker."""
    cpu = run["cpu_s"]
    gateway_name = GATEWAYS.get(run["path"])
    gateway = None if gateway_name is None else float(cpu[gateway_name])
    broker, worker = float(cpu["broker"]), float(cpu["worker"])
    compute = float((run.get("batching") or {}).get("compute_cpu_ms_sum", 0.0)) / 1000.0
    return {
        "gateway": gateway,
        "broker": broker,
        "worker": worker,
        "compute": compute,
        "worker_outside": worker - compute,
        "total": (gateway or 0.0) + broker + worker,
    }


def _per(seconds: dict[str, float | None], count: int) -> dict[str, float | None]:
    return {
        hop: None if value is None else round(value / count * 1e6, 1)
        for hop, value in seconds.items()
    }


def hop_row(key: RunKey, run: dict[str, Any] | None) -> dict[str, Any]:
    """T7 for one run: µs of CPU per request and per instance by hop (None: not measured)."""
    row: dict[str, Any] = {**key._asdict(), "requests": 0, "instances": 0,
                           "per_request_us": None, "per_instance_us": None}  # fmt: skip
    if run is None or "cpu_s" not in run or not run["succeeded"]:
        return row
    seconds = hop_seconds(run)
    row["requests"], row["instances"] = run["succeeded"], run["instances"]
    row["per_request_us"] = _per(seconds, run["succeeded"])
    row["per_instance_us"] = _per(seconds, run["instances"])
    return row


def evaluate_hops(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """T7 for each of `HOP_RUNS` that was measured."""
    rows = [hop_row(key, find_run(runs, key)) for key in HOP_RUNS]
    return [row for row in rows if row["per_request_us"] is not None]
