"""Test servable: every kind of stage an msq worker runs (models exported by export_models.py)."""

import numpy as np

from msq.workers import register

add = register.declare_model("add_dyn.mindir", "MindIR")
affine4 = register.declare_model("affine4.mindir", "MINDIR")
scale = register.declare_model("scale.mindir", "mindir", without_batch_dim_inputs=1)
sub = register.declare_model(["plus_one.mindir", "times_ten.mindir"], "MindIR")
static_add = register.declare_model("add_static.mindir", "MindIR", with_batch_dim=False)
sum_diff = register.declare_model("sum_diff.mindir", "MindIR")
register.batching(max_batch_size=8, max_queue_delay_ms=1.5)


@register.register_method(output_names=["y"])
def add_common(x1, x2):
    return register.add_stage(add, x1, x2)


@register.register_method(output_names=["y"])
def affine(x):
    return register.add_stage(affine4, x)


@register.register_method(output_names=["y"])
def scaled(x, s):
    return register.add_stage(scale, x, s)


def plus_one_times_ten(x):
    return sub.call(sub.call(x), subgraph=1)


@register.register_method(output_names=["first", "chained"])
def subgraphs(x):
    first = register.add_stage(sub, x)
    chained = register.add_stage(plus_one_times_ten, x)
    return first, chained


@register.register_method(output_names=["y"])
def static(x1, x2):
    return register.add_stage(static_add, x1, x2)


@register.register_method(output_names=["total", "diff", "norm"])
def two_outputs(x1, x2):
    total, diff = register.add_stage(sum_diff, x1, x2, outputs_count=2)
    norm = register.add_stage(lambda t: float(np.abs(t).sum()), total)
    return total, diff, norm


def describe(text, blob, number):
    return (
        text.upper(),
        bytes(blob[::-1]),
        len(text),
        float(number) * 2,
        number > 0,
        np.float32(number),
    )


@register.register_method(
    output_names=["upper", "reversed", "length", "double", "positive", "same"]
)
def python_values(text, blob, number):
    return register.add_stage(describe, text, blob, number, outputs_count=6)


def seen_all(instances):
    return [(len(instances), x) for (x,) in instances]


def seen_pairs(instances):
    for (x,) in instances:
        yield len(instances), x


@register.register_method(output_names=["seen", "x"])
def batch_all(x):
    return register.add_stage(seen_all, x, outputs_count=2, batch_size=0)


@register.register_method(output_names=["seen", "x"])
def batch_pairs(x):
    return register.add_stage(seen_pairs, x, outputs_count=2, batch_size=2)


def reject_negative(x):
    if float(x.sum()) < 0:
        raise ValueError("negative input")
    x += 0  # in place: inputs are writable, as in MindSpore Serving
    return x


def reject_negative_batch(instances):
    if any(float(x.sum()) < 0 for (x,) in instances):
        raise ValueError("negative input in the batch")
    return [x for (x,) in instances]


@register.register_method(output_names=["y"])
def checked(x1, x2):
    x1 = register.add_stage(reject_negative, x1)
    return register.add_stage(add, x1, x2)


@register.register_method(output_names=["y"])
def checked_batch(x):
    return register.add_stage(reject_negative_batch, x, batch_size=0)


def affine_list(instances):
    return [outputs[0] for outputs in affine4.call([(x,) for (x,) in instances])]


@register.register_method(output_names=["y"])
def affine_via_call(x):
    return register.add_stage(affine_list, x, batch_size=0)


@register.register_method(output_names=["same", "y"])
def echo(x1, x2):
    return x1, register.add_stage(add, x1, x2)


def odd_value(x):
    return {"not": "a tensor"} if float(x.sum()) > 0 else x


@register.register_method(output_names=["y"])
def unsupported_output(x):
    return register.add_stage(odd_value, x)


def flatten(x):
    return x.reshape(-1)  # the right size for add_dyn.mindir, the wrong shape


@register.register_method(output_names=["y"])
def flattened(x1, x2):
    return register.add_stage(add, register.add_stage(flatten, x1), x2)


def doubled(y):
    return y * 2


@register.register_method(output_names=["y"])
def pre_model_post(x1, x2):
    x1 = register.add_stage(reject_negative, x1)
    y = register.add_stage(add, x1, x2)
    return register.add_stage(doubled, y)
