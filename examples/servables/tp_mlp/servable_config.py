"""A 64-256-16 MLP sharded over 2 ranks (tensor parallel), MindSpore Serving's distributed API.

Each rank holds half the weights (`1/rank_0.mindir`, `1/rank_1.mindir`; see
examples/export_tp_mlp.py); the graph's own AllReduce adds the ranks' partial sums. The worker
serving it starts the ranks itself (or waits for `msq-agent` with `--remote-agents`).

Methods:
- `predict(x)`: x float32 [64] per instance (batched) -> y float32 [16].
"""

from typing import Any

from msq.workers import register
from msq.workers.distributed import declare_servable

model = declare_servable(rank_size=2, stage_size=1, with_batch_dim=True)

register.batching(max_batch_size=16, max_queue_delay_ms=2)


@register.register_method(output_names=["y"])
def predict(x: Any) -> Any:
    """y = the MLP of x."""
    return register.add_stage(model, x, outputs_count=1)
