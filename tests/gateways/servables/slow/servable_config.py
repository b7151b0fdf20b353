"""Test servable of the gRPC gateway tests: `nap(seconds)` sleeps that long, returns seconds."""

import time

import numpy as np

from msq.workers import register


def sleep(seconds):
    time.sleep(float(np.ravel(seconds)[0]))  # a scalar or shape [1]
    return seconds


@register.register_method(output_names=["slept"])
def nap(seconds):
    return register.add_stage(sleep, seconds)
