"""The `tp_mlp` model in one file and one process, for comparison with its 2-rank shards.

Methods:
- `predict(x)`: x float32 [64] per instance (batched) -> y float32 [16].
"""

from typing import Any

from msq.workers import register

model = register.declare_model(model_file="mlp.mindir", model_format="MindIR")

register.batching(max_batch_size=16, max_queue_delay_ms=2)


@register.register_method(output_names=["y"])
def predict(x: Any) -> Any:
    """y = the MLP of x."""
    return register.add_stage(model, x, outputs_count=1)
