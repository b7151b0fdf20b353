"""Test servable of the gRPC gateway tests: Python only, no model.

- `echo(x)`: returns its input unchanged (any dtype and shape, str and bytes included).
- `pair(a, b)`: returns both inputs.
- `checked(x)`: returns x, but fails (for this instance only) when any element is negative.
"""

import numpy as np

from msq.workers import register


@register.register_method(output_names=["y"])
def echo(x):
    return x


@register.register_method(output_names=["a", "b"])
def pair(a, b):
    return a, b


def check_not_negative(x):
    if np.any(np.asarray(x) < 0):
        raise ValueError("x must not be negative")
    return x


@register.register_method(output_names=["y"])
def checked(x):
    return register.add_stage(check_not_negative, x)
