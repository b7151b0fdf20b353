"""Test servable written for MindSpore Serving 1.x (legacy API), loaded unchanged by msq."""
# ruff: noqa: RET504 - written as MindSpore Serving examples were, on purpose

import numpy as np
from mindspore_serving.server import register


def add_trans_datatype(x1, x2):
    return x1.astype(np.float32), x2.astype(np.float32)


def halve_all(instances):
    for instance in instances:
        yield instance[0] / 2


register.declare_servable(
    servable_file="tensor_add.mindir", model_format="MindIR", with_batch_dim=False
)


@register.register_method(output_names=["y"])
def add_common(x1, x2):
    y = register.call_servable(x1, x2)
    return y


@register.register_method(output_names=["y"])
def add_cast(x1, x2):
    x1, x2 = register.call_preprocess(add_trans_datatype, x1, x2)
    y = register.call_servable(x1, x2)
    return y


@register.register_method(output_names=["y"])
def add_halved(x1, x2):
    y = register.call_servable(x1, x2)
    y = register.call_postprocess_pipeline(halve_all, y)
    return y
