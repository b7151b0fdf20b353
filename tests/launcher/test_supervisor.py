"""The supervisor adds and removes children while it watches (real, tiny child processes)."""

from __future__ import annotations

import signal
import sys
import threading

from msq.launcher.supervisor import Child, Supervisor

#: A child that says it is ready and then waits to be stopped.
SLEEPER = [
    sys.executable, "-c",
    "import sys, time; print('msq-sleeper ready: sleeping', file=sys.stderr, flush=True); "
    "time.sleep(120)",
]  # fmt: skip


def test_children_added_from_another_thread_start_and_removed_ones_are_not_restarted() -> None:
    made = threading.Event()
    holder: list[Supervisor] = []

    def watch() -> None:
        holder.append(Supervisor())
        made.set()
        holder[0].watch()

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert made.wait(10)
    supervisor = holder[0]
    try:
        first, second = Child("first", SLEEPER), Child("second", SLEEPER)
        supervisor.add(first, second)  # not the watching thread: `watch()` starts them
        supervisor.wait_ready(first, second, timeout_s=60)
        assert first.process is not None and second.process is not None
        supervisor.remove(first, grace_s=10)
        assert first.process.returncode == -signal.SIGTERM
        assert supervisor.children == [second]
        assert first.restart_at is None
        assert second.alive
    finally:
        supervisor.stop()
        watcher.join(10)
        supervisor.shutdown()
    assert second.process.returncode == -signal.SIGTERM
