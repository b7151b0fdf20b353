"""`msq status --json` against a real broker and workers: after known traffic it reports the
running workers and routes with those figures, and a killed worker leaves it within the
heartbeat bound."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.integration.linking import infer, instance_outcomes
from tests.processes import EXAMPLES, Cluster, start_cluster

#: The broker's heartbeat interval here: a worker silent for 3 of them (2.1 s) is lost
#: (workers send a heartbeat every second).
HEARTBEAT_S = 0.7


@pytest.fixture
def two_workers() -> Iterator[Cluster]:
    cluster = start_cluster(
        [("add", EXAMPLES)], "--heartbeat-interval", str(HEARTBEAT_S), workers_per_servable=2
    )
    yield cluster
    cluster.stop()


def msq_status(frontend: str) -> dict[str, Any]:
    """What `msq status --json` prints (run as a command)."""
    done = subprocess.run(
        ["msq", "status", "--json", "--broker", frontend],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_status_lists_workers_and_routes_with_the_traffic_sent(two_workers: Cluster) -> None:
    x = np.ones((2, 2), np.float32)
    for size in (1, 2, 3, 4):
        reply = infer(two_workers.frontend, "add", "add_common", [{"x1": x, "x2": x}] * size)
        assert len(instance_outcomes(reply)) == size
    data = msq_status(two_workers.frontend)

    broker_proc, *worker_procs = two_workers.procs
    (broker,) = data["brokers"]
    assert (broker["address"], broker["answered"], broker["pid"]) == (
        two_workers.frontend, True, broker_proc.pid,
    )  # fmt: skip
    assert len(broker["incarnation"]) == 12 and broker["uptime_s"] > 0
    workers = data["workers"]
    assert sorted(w["pid"] for w in workers) == sorted(p.pid for p in worker_procs)
    for worker in workers:
        assert (worker["servable"], worker["version"], worker["device"]) == ("add", 1, "cpu")
        assert (worker["busy"], worker["jobs"], worker["free"]) == (0, 0, worker["capacity"])
        assert 0 <= worker["silent_s"] < 3 * HEARTBEAT_S
    routes = {route["method"]: route for route in data["routes"]}
    assert sorted(routes) == ["add_cast", "add_common"]
    common = routes["add_common"]
    assert (common["servable"], common["version"], common["workers"]) == ("add", 1, 2)
    assert (common["queued"], common["in_flight"]) == (0, 0)
    window = common["window"]
    assert (window["requests"], window["instances"], window["completed"]) == (4, 10, 10)
    assert 0 < window["p50_ms"] <= window["p99_ms"] < 10_000
    assert window["requests_per_s"] == pytest.approx(4 / window["seconds"])
    assert window["instances_per_s"] == pytest.approx(10 / window["seconds"])
    assert routes["add_cast"]["window"]["requests"] == 0


def test_a_killed_worker_leaves_the_status_within_the_heartbeat_bound(
    two_workers: Cluster,
) -> None:
    _, killed, kept = two_workers.procs
    assert sorted(w["pid"] for w in msq_status(two_workers.frontend)["workers"]) == sorted(
        [killed.pid, kept.pid]
    )
    killed.kill()
    killed_at = time.monotonic()
    while True:
        asked_after_s = time.monotonic() - killed_at
        data = msq_status(two_workers.frontend)
        if [w["pid"] for w in data["workers"]] == [kept.pid]:
            break
        # the bound, and the broker's tick (at most 0.1 s) after it
        assert asked_after_s < 3 * HEARTBEAT_S + 0.2, data["workers"]
        time.sleep(0.05)
    assert [route["workers"] for route in data["routes"]] == [1, 1]
