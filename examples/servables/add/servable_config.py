"""MindSpore Serving's quick-start `add` servable: y = x1 + x2 on 2x2 float32 tensors.

Methods:
- `add_common(x1, x2)`: the model only; x1 and x2 must be float32 [2, 2].
- `add_cast(x1, x2)`: casts x1 and x2 to float32 in Python first (e.g. int32 from REST JSON
  integers), then runs the model.
"""

from typing import Any

import numpy as np

from msq.workers import register


def add_trans_datatype(x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cast both inputs to float32, the model's input type."""
    return x1.astype(np.float32), x2.astype(np.float32)


# with_batch_dim=False: each instance is one run of the 2x2 + 2x2 model.
tensor_add = register.declare_model(
    model_file="tensor_add.mindir", model_format="MindIR", with_batch_dim=False
)


@register.register_method(output_names=["y"])
def add_common(x1: Any, x2: Any) -> Any:
    """y = x1 + x2 for float32 [2, 2] inputs."""
    return register.add_stage(tensor_add, x1, x2, outputs_count=1)


@register.register_method(output_names=["y"])
def add_cast(x1: Any, x2: Any) -> Any:
    """y = float32(x1) + float32(x2) for [2, 2] inputs of any numeric type."""
    x1, x2 = register.add_stage(add_trans_datatype, x1, x2, outputs_count=2)
    return register.add_stage(tensor_add, x1, x2, outputs_count=1)
