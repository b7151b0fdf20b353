"""MindSpore Serving's REST JSON around a scenario's in-process work, for the servers that run
it without msq (the bare REST floor and the peers), so that they parse and format exactly as
msq's REST gateway does (`msq.gateways.rest.ms_json`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from msq.benchmarks.scenarios import InstanceValues
from msq.gateways.rest.ms_json import dump_json, tensor_json
from msq.proto.codec import from_wire, to_wire
from msq.proto.messages import Instance


def instance_values(instances: Sequence[Instance]) -> list[InstanceValues]:
    """Parsed instances as the compute's input (name -> NumPy view or `bytes`; a STRING tensor
    becomes a `str`, which the compute rejects like any other value it cannot use)."""
    values = [{name: from_wire(tensor) for name, tensor in item.items()} for item in instances]
    return cast("list[InstanceValues]", values)


def reply_body(outputs: Sequence[dict[str, np.ndarray]]) -> bytes:
    """The JSON reply of a request whose instances gave `outputs`."""
    document = {
        "instances": [
            {name: tensor_json(to_wire(value)) for name, value in output.items()}
            for output in outputs
        ]
    }
    return dump_json(document)


def error_body(message: str) -> bytes:
    """The JSON reply of a request that failed as a whole."""
    return dump_json({"error_msg": message})
