"""Benchmark servable `large`: echoes a tensor, to measure moving large payloads (4 MiB).

Method `echo(x)`: y = x, any dtype and shape, in a Python stage (no model: the cost measured is
msq's, not a model's).
"""

from typing import Any

import numpy as np

from msq.workers import register


def identity(x: np.ndarray) -> np.ndarray:
    """The input, unchanged."""
    return x


@register.register_method(output_names=["y"])
def echo(x: Any) -> Any:
    """y = x."""
    return register.add_stage(identity, x, outputs_count=1)
