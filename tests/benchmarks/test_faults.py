"""`msq.benchmarks.faults`: the seeded schedule, msq's processes by role, which one a fault hits."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from msq.benchmarks.faults import Fault, FaultKind, make_schedule, msq_processes, pick_target

KINDS = list(FaultKind)


def test_the_schedule_is_reproducible_and_spaced() -> None:
    schedule = make_schedule(KINDS, 12, first_at_s=10.0, interval_s=20.0, seed=3)
    assert schedule == make_schedule(KINDS, 12, first_at_s=10.0, interval_s=20.0, seed=3)
    assert schedule != make_schedule(KINDS, 12, first_at_s=10.0, interval_s=20.0, seed=4)
    for index, fault in enumerate(schedule):
        assert 10.0 + 20.0 * index <= fault.at_s <= 10.0 + 20.0 * index + 4.0
        assert 0.0 <= fault.pick < 1.0
    # every kind once per round of len(KINDS) faults
    assert sorted(f.kind for f in schedule[:5]) == sorted(KINDS)
    assert sorted(f.kind for f in schedule[5:10]) == sorted(KINDS)
    assert {f.kind for f in schedule[10:]} <= set(KINDS)


def test_a_schedule_of_one_kind() -> None:
    schedule = make_schedule([FaultKind.WORKER_STOP], 3, first_at_s=0.0, interval_s=5.0, seed=0)
    assert [f.kind for f in schedule] == [FaultKind.WORKER_STOP] * 3
    assert make_schedule(KINDS, 0, first_at_s=0.0, interval_s=5.0, seed=0) == []


@pytest.mark.parametrize(
    ("kinds", "count", "first", "interval"),
    [([], 1, 0.0, 1.0), (KINDS, -1, 0.0, 1.0), (KINDS, 1, -1.0, 1.0), (KINDS, 1, 0.0, 0.0)],
)
def test_bad_schedule_settings_are_refused(
    kinds: list[FaultKind], count: int, first: float, interval: float
) -> None:
    with pytest.raises(ValueError, match="a schedule needs"):
        make_schedule(kinds, count, first, interval, seed=0)


#: A stand-in for `msq serve`: children whose argv[0] are msq's commands (each a sleeping
#: python), the REST gateway with one child of its own like a gunicorn worker.
LAUNCHER = """
import subprocess, sys, time
SLEEP = "import time; time.sleep(60)"
def start(name, code=SLEEP):
    subprocess.Popen([name, "-c", code], executable=sys.executable)
for name in ("msq-broker", "msq-worker", "msq-worker", "msq-grpc-gateway"):
    start(name)
start("msq-rest-gateway", "import subprocess, sys, time; "
      "subprocess.Popen(['msq-rest-gateway', '-c', 'import time; time.sleep(60)'], "
      "executable=sys.executable); time.sleep(60)")
time.sleep(60)
"""


@pytest.fixture
def fake_deployment() -> Iterator[psutil.Process]:
    """A launcher with msq-like children: broker, two workers, gRPC, REST with a worker."""
    popen = subprocess.Popen([sys.executable, "-c", LAUNCHER])
    launcher = psutil.Process(popen.pid)
    deadline = time.monotonic() + 60
    while len(launcher.children(recursive=True)) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield launcher
    for process in [*launcher.children(recursive=True), launcher]:
        process.kill()
    popen.wait()


def test_processes_are_named_by_role(fake_deployment: psutil.Process) -> None:
    named = msq_processes(fake_deployment)
    assert sorted(named) == ["broker", "grpc", "rest", "rest worker #1", "worker #1", "worker #2"]
    assert named["rest worker #1"].parent() == named["rest"]
    assert named["worker #1"].create_time() <= named["worker #2"].create_time()


def test_a_fault_picks_a_process_of_its_role(fake_deployment: psutil.Process) -> None:
    named = msq_processes(fake_deployment)
    pick = {p: pick_target(Fault(0.0, FaultKind.WORKER_KILL, p), named) for p in (0.0, 0.49, 0.5)}
    assert pick == {0.0: "worker #1", 0.49: "worker #1", 0.5: "worker #2"}
    assert pick_target(Fault(0.0, FaultKind.REST_WORKER_KILL, 0.9), named) == "rest worker #1"
    assert pick_target(Fault(0.0, FaultKind.BROKER_KILL, 0.9), named) == "broker"
    assert pick_target(Fault(0.0, FaultKind.GRPC_KILL, 0.0), {"broker": named["broker"]}) is None
