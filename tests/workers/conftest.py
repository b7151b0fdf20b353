"""Fixtures of the worker tests: the test servables with their models, exported once."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from msq.proto.columns import stack
from tests.workers.support import Outcome, decode, encode

if TYPE_CHECKING:
    from msq.workers.servable import LoadedServable

HERE = Path(__file__).resolve().parent

RunMethod = Callable[[str, list[dict[str, object]]], list[Outcome]]


@pytest.fixture(scope="session")
def servable_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A servable directory with the `pipes` and `legacy` test servables and their models."""
    root = tmp_path_factory.mktemp("servables")
    shutil.copytree(HERE / "servables", root, dirs_exist_ok=True)
    subprocess.run(
        [sys.executable, str(HERE / "export_models.py"), str(root)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return root


@pytest.fixture(scope="session")
def pipes(servable_dir: Path) -> LoadedServable:
    """The `pipes` servable loaded in this process (models on the CPU)."""
    from msq.workers.servable import load_servable

    return load_servable(servable_dir, "pipes")


@pytest.fixture(scope="session")
def run_pipes(pipes: LoadedServable) -> RunMethod:
    """Run a method of `pipes` on instances of values; outcomes decoded."""

    def run(method: str, instances: list[dict[str, object]]) -> list[Outcome]:
        return [
            decode(o)
            for o in pipes.methods[method].run(stack([encode(i) for i in instances])).rows()
        ]

    return run
