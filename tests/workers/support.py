"""Helpers of the worker tests: instances as they travel, outcomes as values."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from msq.proto.codec import WireTensor, from_wire, to_wire
from msq.proto.columns import Outcomes, count_rows
from msq.proto.errors import Failure
from msq.proto.messages import InstanceOutcome, Result

Outcome = dict[str, object] | Failure
HERE = Path(__file__).resolve().parent


def encode(instance: dict[str, object]) -> dict[str, WireTensor]:
    """An instance of values as it arrives from the broker."""
    return {name: to_wire(value) for name, value in instance.items()}


def decode(outcome: InstanceOutcome) -> Outcome:
    """An outcome with its tensors as values (a Failure stays as it is)."""
    if isinstance(outcome, Failure):
        return outcome
    return {name: from_wire(tensor) for name, tensor in outcome.items()}


def rows(result: Result) -> list[InstanceOutcome]:
    """Every instance's outcome in a job's result, in order."""
    count = count_rows(result.columns) + len(result.failures)
    return Outcomes(result.columns, result.failures, count).rows()


def f32(*shape: int, value: float = 0.0) -> np.ndarray:
    """A float32 array of `shape` filled with `value`."""
    return np.full(shape, value, dtype=np.float32)


@dataclass(frozen=True)
class OldServables:
    """A servable directory with `old_servables/` (resnet1x, lenet1x, secret) and their models,
    and the key file of `secret`'s encrypted model."""

    root: Path
    key_file: Path

    @property
    def key(self) -> bytes:
        return self.key_file.read_bytes()


def export_old_servables(root: Path) -> OldServables:
    """Copy `old_servables/` to `root/servables`, make a key (in `root/model.key`, mode 600)
    and export the models (`secret`'s encrypted with it)."""
    servables = root / "servables"
    shutil.copytree(HERE / "old_servables", servables)
    key_file = root / "model.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(os.urandom(16))
    subprocess.run(
        [sys.executable, str(HERE / "export_models.py"), "--old", str(servables), str(key_file)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return OldServables(servables, key_file)


def image_file(color: tuple[int, int, int], size: int = 16, mode: str = "RGB") -> np.ndarray:
    """A PNG of one colour, as the uint8 array of its bytes (what Python stages receive)."""
    buffer = io.BytesIO()
    Image.new(mode, (size, size), color if mode == "RGB" else color[0]).save(buffer, "PNG")
    return np.frombuffer(buffer.getvalue(), np.uint8)
