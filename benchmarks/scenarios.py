"""Benchmark scenarios: which servable is served, which method is called, with what inputs.

Each scenario names a servable directory of the repository, the method the load generator
calls, the model file the in-process baselines load, and how to make request instances.
Instances are plain values (NumPy arrays, `bytes`), converted per protocol by `payloads`.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: The repository root (benchmarks/ lives directly under it).
REPO = Path(__file__).resolve().parent.parent
BENCH_SERVABLES = REPO / "benchmarks" / "servables"
EXAMPLE_SERVABLES = REPO / "examples" / "servables"
#: MindSpore intra-op threads of an in-process model (as msq workers cap theirs).
DEFAULT_THREADS = 2

Value = np.ndarray | bytes
InstanceValues = dict[str, Value]

#: Bytes in the `large` scenario's tensor: 4 MiB of float32.
LARGE_ELEMENTS = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Scenario:
    """One workload: a servable method and the instances sent to it."""

    name: str
    servable_dir: Path
    servable: str
    method: str
    outputs: tuple[str, ...]
    model_file: str | None
    make_instance: Callable[[np.random.Generator], InstanceValues]
    description: str
    #: Request deadline given to msq's gateways and link (None: their defaults).
    timeout_s: float | None = None

    @property
    def model_path(self) -> Path | None:
        """The MindIR file of version 1, which the in-process baselines load."""
        if self.model_file is None:
            return None
        return self.servable_dir / self.servable / "1" / self.model_file

    def instances(self, count: int, seed: int = 0) -> list[InstanceValues]:
        """`count` request instances, the same for every run with the same seed."""
        rng = np.random.default_rng(seed)
        return [self.make_instance(rng) for _ in range(count)]


def _add_instance(rng: np.random.Generator) -> InstanceValues:
    return {
        "x1": rng.standard_normal((2, 2)).astype(np.float32),
        "x2": rng.standard_normal((2, 2)).astype(np.float32),
    }


def _mlp_instance(rng: np.random.Generator) -> InstanceValues:
    return {"x": rng.standard_normal(784).astype(np.float32)}


def digit_png(index: int) -> bytes:
    """An 8x8 grayscale PNG of scikit-learn's digit number `index` (pixels 0..16 -> 0..255)."""
    images = _digit_images()
    pixels = images[index % len(images)]
    image = Image.fromarray(np.round(pixels * (255.0 / 16.0)).astype(np.uint8), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@functools.cache
def _digit_images() -> np.ndarray:
    from sklearn.datasets import load_digits  # noqa: PLC0415 - slow import, image scenario only

    return np.asarray(load_digits().images)


def _image_instance(rng: np.random.Generator) -> InstanceValues:
    return {"image": digit_png(int(rng.integers(0, 1797)))}


def _large_instance(rng: np.random.Generator) -> InstanceValues:
    return {"x": rng.standard_normal(LARGE_ELEMENTS).astype(np.float32)}


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            name="tiny",
            servable_dir=EXAMPLE_SERVABLES,
            servable="add",
            method="add_common",
            outputs=("y",),
            model_file="tensor_add.mindir",
            make_instance=_add_instance,
            description="2x2 float32 add (examples/servables/add)",
        ),
        Scenario(
            name="mlp",
            servable_dir=BENCH_SERVABLES,
            servable="mlp",
            method="predict",
            outputs=("y",),
            model_file="mlp.mindir",
            make_instance=_mlp_instance,
            description="784-512-512-10 MLP, dynamic batch (benchmarks/servables/mlp)",
        ),
        Scenario(
            name="image",
            servable_dir=EXAMPLE_SERVABLES,
            servable="digits",
            method="predict_image",
            outputs=("label", "scores", "classes"),
            model_file="digits_mlp.mindir",
            make_instance=_image_instance,
            description="8x8 digit PNG -> label (examples/servables/digits)",
        ),
        Scenario(
            name="large",
            servable_dir=BENCH_SERVABLES,
            servable="large",
            method="echo",
            outputs=("y",),
            model_file=None,
            make_instance=_large_instance,
            description="4 MiB float32 tensor in and out (benchmarks/servables/large)",
            # The broker keeps each finished request until its deadline (see README): a short
            # deadline bounds that memory at 4 MiB per request.
            timeout_s=5.0,
        ),
    )
}
