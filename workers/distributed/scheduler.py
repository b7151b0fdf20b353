"""MindSpore's dynamic-cluster scheduler of a distributed servable: `init()` with the
`MS_SCHED_*` variables the worker set (`processes.start_scheduler`); runs until the worker
kills it."""

from __future__ import annotations

from msq.workers.distributed.processes import die_with_parent

if __name__ == "__main__":
    die_with_parent()
    from mindspore.communication import init

    init()
