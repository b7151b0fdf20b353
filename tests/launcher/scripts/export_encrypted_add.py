"""Write an `enc_add` servable (the `add` example's config) whose MindIR is encrypted.

    python export_encrypted_add.py OUT_DIR KEY_FILE MODE

Run as a script: MindSpore compiles networks from source files, not from `python -c`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "servables" / "add"


class Add(nn.Cell):
    """y = x1 + x2."""

    def construct(self, x1: ms.Tensor, x2: ms.Tensor) -> ms.Tensor:
        return x1 + x2


def export(out_dir: Path, key: bytes, mode: str) -> None:
    """`out_dir/enc_add/servable_config.py` and its encrypted `1/tensor_add.mindir`."""
    servable = out_dir / "enc_add"
    (servable / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "servable_config.py", servable / "servable_config.py")
    x = ms.Tensor(np.zeros((2, 2), np.float32))
    ms.export(Add(), x, x, file_name=str(servable / "1" / "tensor_add"), file_format="MINDIR",
              enc_key=key, enc_mode=mode)  # fmt: skip


if __name__ == "__main__":
    export(Path(sys.argv[1]), Path(sys.argv[2]).read_bytes(), sys.argv[3])
