"""Regenerate every example model: the `add` MindIR, the trained `digits` MindIR + metrics, and
the `tp_mlp` shards with their unsharded twin `tp_mlp_single`.

    python examples/make_models.py [--out-dir SERVABLES_DIR]

writes `SERVABLES_DIR/add/1/`, `SERVABLES_DIR/digits/1/`, `SERVABLES_DIR/tp_mlp/1/` and
`SERVABLES_DIR/tp_mlp_single/1/` (default: examples/servables).
Each script runs in its own interpreter: MindSpore names graphs by a per-process counter, so a
fresh process is what makes every file byte-identical from run to run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
#: (export script, servable folder it writes version 1 of)
EXPORTS = (("export_add.py", "add"), ("train_digits.py", "digits"))
#: Export scripts that write several servables: they take the servables folder itself.
SERVABLES_EXPORTS = ("export_tp_mlp.py",)


def make_models(servables_dir: Path) -> None:
    """Run every export script, writing into `servables_dir/<servable>/1`."""
    for script, servable in EXPORTS:
        out_dir = servables_dir / servable / "1"
        command = [sys.executable, str(EXAMPLES_DIR / script), "--out-dir", str(out_dir)]
        subprocess.run(command, check=True)
    for script in SERVABLES_EXPORTS:
        command = [sys.executable, str(EXAMPLES_DIR / script), "--out-dir", str(servables_dir)]
        subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=EXAMPLES_DIR / "servables")
    args = parser.parse_args(argv)
    make_models(args.out_dir)


if __name__ == "__main__":
    main()
