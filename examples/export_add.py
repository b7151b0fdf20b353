"""Export the `add` servable's model: a 2x2 float32 + 2x2 float32 -> 2x2 float32 add (MindIR).

The graph has static shapes (the servable declares `with_batch_dim=False`). Run it as a script;
MindSpore compiles networks from source files, not from `python -c`:

    python examples/export_add.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mindspore as ms
import numpy as np
from mindir_export import export_mindir
from mindspore import nn, ops

MODEL_FILE = "tensor_add.mindir"
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "servables" / "add" / "1"


class TensorAdd(nn.Cell):  # type: ignore[misc]
    """y = x1 + x2."""

    def __init__(self) -> None:
        super().__init__()
        self.add = ops.Add()

    def construct(self, x1: ms.Tensor, x2: ms.Tensor) -> ms.Tensor:
        return self.add(x1, x2)


def export_add(out_dir: Path) -> Path:
    """Write `tensor_add.mindir` into `out_dir` and return its path."""
    example = ms.Tensor(np.ones((2, 2), dtype=np.float32))
    return export_mindir(TensorAdd(), example, example, path=out_dir / MODEL_FILE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    print(f"wrote {export_add(args.out_dir)}")


if __name__ == "__main__":
    main()
