"""Written like MindSpore Serving's resnet50 example for MindSpore 1.x: its pre-processing uses
`c_transforms`, which MindSpore 2.0 removed (msq serves it with `--legacy-imports`).

`classify_top1(image)`: the bytes of an RGB image file -> `label`, the colour whose normalized
mean is largest ("red", "green" or "blue"); `channel_means(image)` -> `means`, float32 [3], the
model's output: the mean of each channel of the decoded, resized (16x16), centre-cropped (8x8),
normalized and transposed (CHW) image.
"""
# ruff: noqa: RET504, N812, I001 - written as MindSpore Serving's examples were, on purpose

import mindspore.common.dtype as mstype
import mindspore.dataset.transforms.c_transforms as TC
import mindspore.dataset.vision.c_transforms as VC
import numpy as np

from mindspore_serving.server import register

LABELS = ["red", "green", "blue"]
MEAN = [0.4914 * 255, 0.4822 * 255, 0.4465 * 255]
STD = [0.2023 * 255, 0.1994 * 255, 0.2010 * 255]


def preprocess_eager(image):
    """An image file's bytes -> float32 [3, 8, 8], as resnet50's example prepares CIFAR-10."""
    image = VC.Decode()(image)
    image = VC.Resize([16, 16])(image)
    image = VC.CenterCrop(8)(image)
    image = VC.Normalize(mean=MEAN, std=STD)(image)
    image = VC.HWC2CHW()(image)
    return TC.TypeCast(mstype.float32)(image)


def postprocess_top1(score):
    """The label of the largest score."""
    return LABELS[int(np.argmax(score))]


channel_mean = register.declare_model(model_file="channel_mean.mindir", model_format="MindIR")


@register.register_method(output_names=["label"])
def classify_top1(image):
    x = register.add_stage(preprocess_eager, image, outputs_count=1)
    x = register.add_stage(channel_mean, x, outputs_count=1)
    x = register.add_stage(postprocess_top1, x, outputs_count=1)
    return x


@register.register_method(output_names=["means"])
def channel_means(image):
    x = register.add_stage(preprocess_eager, image, outputs_count=1)
    x = register.add_stage(channel_mean, x, outputs_count=1)
    return x
