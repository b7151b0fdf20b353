"""Requests with known answers through a gRPC gateway, run on another "host" (namespace):

    python -m tests.integration.netns_client HOST:PORT --requests N [--concurrency C]

Each request asks `add.add_common` for x1 + x2 with values of its own; prints one JSON line
{"ok": n, "wrong": n, "failed": {"message": count}} (and a line "started" once the first answer
came, for a test that injects a fault under load).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from msq.client import Client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--requests", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    outcomes: Counter[str] = Counter()
    first = threading.Event()

    def one(index: int, client: Client) -> None:
        x1 = np.full((2, 2), index, np.float32)
        x2 = np.arange(4, dtype=np.float32).reshape(2, 2)
        result = client.infer([{"x1": x1, "x2": x2}], timeout=args.timeout)
        if isinstance(result, dict):
            outcomes[f"failed: {result['error']}"] += 1
        elif isinstance(result[0], dict) and np.array_equal(result[0].get("y"), x1 + x2):
            outcomes["ok"] += 1
        else:
            outcomes["wrong"] += 1
        if not first.is_set():
            first.set()
            print("started", flush=True)

    with (
        Client(args.address, "add", "add_common") as client,
        ThreadPoolExecutor(args.concurrency) as pool,
    ):
        for future in [pool.submit(one, i, client) for i in range(args.requests)]:
            future.result()
    failed = {
        key.removeprefix("failed: "): n for key, n in outcomes.items() if key[:7] == "failed:"
    }
    print(json.dumps({"ok": outcomes["ok"], "wrong": outcomes["wrong"], "failed": failed}))


if __name__ == "__main__":
    main()
