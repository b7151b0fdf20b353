"""What the peers (Ray Serve: `ray_peer`, LitServe: `litserve_peer`) share, so that they differ
only in their serving framework: msq's default batching, the command line and the ready line.
Both run the scenario's in-process work (`msq.benchmarks.compute`) behind MindSpore Serving's
REST JSON (`msq.benchmarks.ms_rest`), as the same client drives msq's REST gateway."""

from __future__ import annotations

import argparse

from msq.benchmarks.scenarios import DEFAULT_THREADS

#: Batching like msq's default: up to 64 instances, waiting at most 2 ms for more.
MAX_BATCH_SIZE = 64
BATCH_WAIT_S = 0.002


def ready_line(name: str) -> str:
    """What peer `name` prints on stderr once it serves (the harness waits for it)."""
    return f"{name}-peer ready"


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """`--scenario NAME --port N [--threads N]`: what to serve, on 127.0.0.1:N."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    return parser.parse_args(argv)
