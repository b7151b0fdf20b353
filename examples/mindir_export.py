"""Reproducible MindIR export shared by the example export scripts.

`mindspore.export` stamps each file with a `compile_phase` graph attribute that holds a
timestamp and an object id, and lists the graph's primitive definitions in an order that varies
from run to run (they are referenced by name). This module exports, replaces the stamp with a
constant, sorts the primitives by name and writes the file atomically, so the same network and
weights always give a byte-identical MindIR file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mindspore as ms
from mindspore import nn
from mindspore.train import mind_ir_pb2

#: The graph attribute that carries the per-export stamp, and the constant that replaces it.
COMPILE_PHASE_ATTRIBUTE = "compile_phase"
COMPILE_PHASE_VALUE = b"export.mindir"


def export_mindir(net: nn.Cell, *inputs: ms.Tensor, path: Path) -> Path:
    """Export `net` traced with `inputs` to `path` (a `.mindir` file) reproducibly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        raw_path = Path(scratch) / "net.mindir"
        ms.export(net, *inputs, file_name=str(raw_path), file_format="MINDIR")
        model = mind_ir_pb2.ModelProto()
        model.ParseFromString(raw_path.read_bytes())
        for attribute in model.graph.attribute:
            if attribute.name == COMPILE_PHASE_ATTRIBUTE:
                attribute.s = COMPILE_PHASE_VALUE
        primitives = sorted(model.primitives, key=lambda primitive: primitive.name)
        del model.primitives[:]
        model.primitives.extend(primitives)
        staged_path = Path(scratch) / path.name
        staged_path.write_bytes(model.SerializeToString(deterministic=True))
        os.chmod(staged_path, 0o644)
        os.replace(staged_path, path)
    return path
