"""Handwritten digit classifier: a 64-64-10 MLP trained on scikit-learn's 8x8 digits.

Methods, each answering per instance `label` (int64 [], the most likely digit), `classes`
(int64 [3], the three most likely digits, most likely first) and `scores` (float32 [3], their
softmax probabilities):

- `predict(pixels)`: pixels of one digit, float32 [8, 8], in the dataset's own units: 0
  (background) .. 16 (ink), as `sklearn.datasets.load_digits().images` gives (as float64).
- `predict_image(image)`: the bytes of an image file Pillow reads (PNG, JPEG, ...), with bright
  ink on a dark background. It is converted to 8-bit grayscale; an image of another size than 8x8
  is area-averaged down to 8x8 (the way the dataset was made from 32x32 bitmaps); grey levels
  0..255 map linearly to 0..16. An 8x8 grayscale PNG of `round(pixels * 255 / 16)` gives back
  `pixels` within 16/510.

The model (version folder 1/, made by examples/train_digits.py) takes float32 [batch, 64] in the
dataset's units and returns 10 logits per row; msq batches the model stage across requests.
Both methods declare their input and output types (msq's `input_types` / `output_types`), so
requests are checked against them and V2 metadata shows them.
"""

import io
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from msq.workers import register

SIDE = 8
PIXEL_MAX = 16.0  # the dataset's pixel values run 0..16
GREY_MAX = 255.0
TOP_K = 3
MAX_IMAGE_PIXELS = 4096 * 4096  # larger images are refused before they are decoded
# What Pillow raises on bytes that are not a readable image (UnidentifiedImageError is an OSError;
# fuzzed PNG/JPEG/GIF/BMP/TIFF/WebP files also raised the others).
IMAGE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, TypeError, Image.DecompressionBombError)


def flatten_pixels(pixels: np.ndarray) -> np.ndarray:
    """Check one digit's pixels ([8, 8] or [64], numeric) and return them as float32 [64]."""
    array = np.asarray(pixels)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"pixels must be numeric, not {array.dtype}")
    if array.shape not in ((SIDE, SIDE), (SIDE * SIDE,)):
        raise ValueError(f"pixels must have shape [8, 8] or [64], not {list(array.shape)}")
    return array.astype(np.float32).reshape(SIDE * SIDE)


def image_to_pixels(image: bytes | np.ndarray) -> np.ndarray:
    """Decode an image file's bytes to one digit's pixels: float32 [64] in 0..16."""
    if not isinstance(image, (bytes, np.ndarray)):
        raise ValueError(f"image must be bytes, not {type(image).__name__}")
    try:
        with Image.open(io.BytesIO(bytes(image))) as decoded:
            width, height = decoded.size
            fits = width * height <= MAX_IMAGE_PIXELS
            grey = decoded.convert("L") if fits else None
    except UnidentifiedImageError:
        raise ValueError("image cannot be decoded: not in an image format Pillow reads") from None
    except IMAGE_ERRORS as exc:
        raise ValueError(f"image cannot be decoded: {exc}") from None
    if grey is None:
        raise ValueError(
            f"image of {width}x{height} pixels is too large (at most {MAX_IMAGE_PIXELS} pixels)"
        )
    if grey.size != (SIDE, SIDE):
        grey = grey.resize((SIDE, SIDE), Image.Resampling.BOX)
    levels = np.asarray(grey, dtype=np.float32).reshape(SIDE * SIDE)
    return levels * np.float32(PIXEL_MAX / GREY_MAX)


def top_classes(logits: np.ndarray) -> tuple[np.int64, np.ndarray, np.ndarray]:
    """From one row of 10 logits: (label, scores of the top 3, their classes)."""
    shifted = np.exp(logits - logits.max())
    probabilities = shifted / shifted.sum()
    classes = np.argsort(-probabilities, kind="stable")[:TOP_K].astype(np.int64)
    return classes[0], probabilities[classes].astype(np.float32), classes


digits_mlp = register.declare_model(
    model_file="digits_mlp.mindir", model_format="MindIR", with_batch_dim=True
)


#: What both methods answer per instance (declared, so that V2 metadata shows them).
OUTPUT_TYPES = {
    "label": ("int64", []),
    "scores": ("float32", [TOP_K]),
    "classes": ("int64", [TOP_K]),
}


@register.register_method(
    output_names=["label", "scores", "classes"],
    input_types={"pixels": ("float32", [SIDE, SIDE])},
    output_types=OUTPUT_TYPES,
)
def predict(pixels: Any) -> tuple[Any, Any, Any]:
    """Classify one digit given as float32 pixels in 0..16, shape [8, 8]."""
    row = register.add_stage(flatten_pixels, pixels, outputs_count=1)
    logits = register.add_stage(digits_mlp, row, outputs_count=1)
    label, scores, classes = register.add_stage(top_classes, logits, outputs_count=3)
    return label, scores, classes


@register.register_method(
    output_names=["label", "scores", "classes"],
    input_types={"image": ("bytes", [])},
    output_types=OUTPUT_TYPES,
)
def predict_image(image: Any) -> tuple[Any, Any, Any]:
    """Classify one digit given as an image file's bytes (bright ink on a dark background)."""
    row = register.add_stage(image_to_pixels, image, outputs_count=1)
    logits = register.add_stage(digits_mlp, row, outputs_count=1)
    label, scores, classes = register.add_stage(top_classes, logits, outputs_count=3)
    return label, scores, classes
