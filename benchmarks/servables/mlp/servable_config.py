"""Benchmark servable `mlp`: a 784-512-512-10 ReLU MLP with a dynamic batch dimension.

Method `predict(x)`: x float32 [784] per instance -> y float32 [10] (logits). The model in
version folder 1/ is written by benchmarks/models/export_mlp.py; msq batches it across requests.
"""

from typing import Any

from msq.workers import register

mlp = register.declare_model(model_file="mlp.mindir", model_format="MindIR", with_batch_dim=True)


@register.register_method(output_names=["y"])
def predict(x: Any) -> Any:
    """Logits of one 784-float input."""
    return register.add_stage(mlp, x, outputs_count=1)
