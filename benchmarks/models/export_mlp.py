"""Export the `mlp` benchmark model: 784-512-512-10 with ReLU and a dynamic batch dimension.

The weights come from a fixed seed and the file is written with the examples' reproducible
exporter (`examples/mindir_export.py`), so every export gives a byte-identical file. Run:
    python benchmarks/models/export_mlp.py [--out benchmarks/servables/mlp/1/mlp.mindir]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import mindspore as ms
import numpy as np
from mindspore import nn

REPO = Path(__file__).resolve().parents[2]

#: Layer widths of the model, input first.
LAYERS = (784, 512, 512, 10)
SEED = 20240501
DEFAULT_OUT = REPO / "benchmarks" / "servables" / "mlp" / "1" / "mlp.mindir"


def mlp_weights(seed: int = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight [out, in], bias [out]) per layer, He-scaled, from a fixed seed."""
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in itertools.pairwise(LAYERS):
        weight = rng.standard_normal((fan_out, fan_in)).astype(np.float32) * np.sqrt(2.0 / fan_in)
        bias = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        weights.append((weight, bias))
    return weights


def mlp_reference(x: np.ndarray, seed: int = SEED) -> np.ndarray:
    """The model's output computed with NumPy (to check the exported graph)."""
    layers = mlp_weights(seed)
    for index, (weight, bias) in enumerate(layers):
        x = x @ weight.T + bias
        if index < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


class MLP(nn.Cell):  # type: ignore[misc]
    """Dense layers with the fixed weights, ReLU between them."""

    def __init__(self, seed: int = SEED) -> None:
        super().__init__()
        layers = []
        for weight, bias in mlp_weights(seed):
            dense = nn.Dense(weight.shape[1], weight.shape[0])
            dense.weight.set_data(ms.Tensor(weight))
            dense.bias.set_data(ms.Tensor(bias))
            layers.append(dense)
        self.layers = nn.CellList(layers)
        self.relu = nn.ReLU()

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = self.relu(x)
        return x


def _examples_exporter() -> ModuleType:
    """examples/mindir_export.py (a script folder, not a package)."""
    path = REPO / "examples" / "mindir_export.py"
    spec = importlib.util.spec_from_file_location("mindir_export", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export(out: Path, seed: int = SEED) -> Path:
    """Write the MindIR file and return its path."""
    example = ms.Tensor(shape=[None, LAYERS[0]], dtype=ms.float32)
    path: Path = _examples_exporter().export_mindir(MLP(seed), example, path=out)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="MindIR file to write")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    print(export(args.out, args.seed))


if __name__ == "__main__":
    main()
