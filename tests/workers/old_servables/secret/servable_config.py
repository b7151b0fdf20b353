"""`add_common(x1, x2)` -> `y = x1 + x2` (float32 [2, 2]) on an AES-GCM encrypted MindIR file."""

from mindspore_serving.server import register

tensor_add = register.declare_model(model_file="tensor_add.mindir", model_format="MindIR")


@register.register_method(output_names=["y"])
def add_common(x1, x2):
    return register.add_stage(tensor_add, x1, x2, outputs_count=1)
