"""Export the tiny MindIR models of the worker tests' servables.

    python tests/workers/export_models.py OUT_DIR
    python tests/workers/export_models.py --old OUT_DIR KEY_FILE

writes `OUT_DIR/pipes/1/*.mindir` and `OUT_DIR/legacy/1/tensor_add.mindir`; with `--old`, the
models of `old_servables/` (`resnet1x`, `lenet1x`, and `secret`'s encrypted with the AES-GCM key
in KEY_FILE). Run it as a script: MindSpore compiles networks from source files, not from
`python -c`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn


class Add(nn.Cell):
    """y = x1 + x2."""

    def construct(self, x1: ms.Tensor, x2: ms.Tensor) -> ms.Tensor:
        return x1 + x2


class Affine(nn.Cell):
    """y = 2 x + 1."""

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return x * 2.0 + 1.0


class Scale(nn.Cell):
    """y = x * s, with s shared by the batch."""

    def construct(self, x: ms.Tensor, s: ms.Tensor) -> ms.Tensor:
        return x * s


class PlusOne(nn.Cell):
    """y = x + 1."""

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return x + 1.0


class TimesTen(nn.Cell):
    """y = 10 x."""

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return x * 10.0


class SumDiff(nn.Cell):
    """(x1 + x2, x1 - x2)."""

    def construct(self, x1: ms.Tensor, x2: ms.Tensor) -> tuple[ms.Tensor, ms.Tensor]:
        return x1 + x2, x1 - x2


class ChannelMean(nn.Cell):
    """[N, C, H, W] -> [N, C]: the mean of each channel."""

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return x.mean(axis=(2, 3))


class Mean(nn.Cell):
    """[N, H, W] -> [N]: the mean of each instance."""

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return x.mean(axis=(1, 2))


def _export(net: nn.Cell, path: Path, *inputs: ms.Tensor, **encryption: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ms.export(net, *inputs, file_name=str(path.with_suffix("")), file_format="MINDIR", **encryption)


def export_all(out_dir: Path) -> None:
    """Write every test model under `out_dir`."""
    f32 = ms.float32
    pipes = out_dir / "pipes" / "1"
    dynamic_2x2 = ms.Tensor(shape=[None, 2, 2], dtype=f32)
    static_2x2 = ms.Tensor(np.zeros((2, 2), np.float32))
    dynamic_2 = ms.Tensor(shape=[None, 2], dtype=f32)
    _export(Add(), pipes / "add_dyn.mindir", dynamic_2x2, dynamic_2x2)
    _export(Affine(), pipes / "affine4.mindir", ms.Tensor(np.zeros((4, 3), np.float32)))
    _export(
        Scale(),
        pipes / "scale.mindir",
        ms.Tensor(shape=[None, 3], dtype=f32),
        ms.Tensor(np.ones(3, np.float32)),
    )
    _export(PlusOne(), pipes / "plus_one.mindir", dynamic_2)
    _export(TimesTen(), pipes / "times_ten.mindir", dynamic_2)
    _export(Add(), pipes / "add_static.mindir", static_2x2, static_2x2)
    _export(SumDiff(), pipes / "sum_diff.mindir", dynamic_2, dynamic_2)
    _export(Add(), out_dir / "legacy" / "1" / "tensor_add.mindir", static_2x2, static_2x2)


def export_old(out_dir: Path, key_file: Path) -> None:
    """Write the models of the MindSpore Serving-era servables (`old_servables/`)."""
    f32 = ms.float32
    _export(ChannelMean(), out_dir / "resnet1x" / "1" / "channel_mean.mindir",
            ms.Tensor(shape=[None, 3, 8, 8], dtype=f32))  # fmt: skip
    _export(Mean(), out_dir / "lenet1x" / "1" / "mean.mindir",
            ms.Tensor(shape=[None, 8, 8], dtype=f32))  # fmt: skip
    dynamic_2x2 = ms.Tensor(shape=[None, 2, 2], dtype=f32)
    _export(Add(), out_dir / "secret" / "1" / "tensor_add.mindir", dynamic_2x2, dynamic_2x2,
            enc_key=key_file.read_bytes(), enc_mode="AES-GCM")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "--old":
        export_old(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        export_all(Path(sys.argv[1]))
