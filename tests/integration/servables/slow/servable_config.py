"""Test servable: y = 2 * x after sleeping `delay` seconds; also returns the worker's pid."""

import os
import time
from typing import Any

import numpy as np

from msq.workers import register

register.batching(max_batch_size=8, max_queue_delay_ms=2.0)


def double_slowly(x: np.ndarray, delay: np.ndarray) -> tuple[np.ndarray, np.int64]:
    time.sleep(float(delay))
    return x * 2, np.int64(os.getpid())


@register.register_method(output_names=["y", "pid"])
def compute(x: Any, delay: Any) -> tuple[Any, Any]:
    y, pid = register.add_stage(double_slowly, x, delay, outputs_count=2)
    return y, pid
