"""Written like MindSpore Serving's lenet example: its pre-processing resizes with
`PIL.Image.ANTIALIAS`, which Pillow 10 removed (msq serves it with `--legacy-imports`).

`brightness(image)`: the bytes of an image file -> `brightness`, float32 [], the mean of its 8x8
grey levels scaled to 0..1.
"""
# ruff: noqa: RET504, I001 - written as MindSpore Serving's examples were, on purpose

from io import BytesIO

import numpy as np
from PIL import Image

from mindspore_serving.server import register


def preprocess_eager(image):
    """An image file's bytes -> float32 [8, 8] grey levels in 0..1."""
    image = Image.open(BytesIO(image.tobytes())).convert("L").resize((8, 8), Image.ANTIALIAS)
    image = np.array(image, np.float32)
    return image / 255.0


mean_model = register.declare_model(model_file="mean.mindir", model_format="MindIR")


@register.register_method(output_names=["brightness"])
def brightness(image):
    x = register.add_stage(preprocess_eager, image, outputs_count=1)
    x = register.add_stage(mean_model, x, outputs_count=1)
    return x
