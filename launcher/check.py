"""`msq check SERVABLE_DIR`: what will fail when servables written for MindSpore Serving run on
msq, and the fix for each (`msq.workers.migration`), as a table or JSON.

Nothing is served: no broker, no socket. The configs are imported and the models loaded on the
CPU, as a worker would. Exit status 0 when no finding is an error, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from msq.workers.decryption import DEC_MODES, DEFAULT_DEC_MODE, KeyFileError, read_key_file

if TYPE_CHECKING:
    from msq.workers.migration import Finding

#: The severities' colours in the table.
_STYLES = {"error": "bold red", "warning": "yellow"}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `msq check` to the launcher's subcommands."""
    parser = commands.add_parser(
        "check",
        help="report what will fail in servables written for MindSpore Serving, with fixes",
        description="Load each servable's config and models without serving them and report "
        "what will fail (MindSpore 1.x imports, removed Pillow constants, missing model files, "
        "version folders, models that do not load) and the fix for each; untyped method "
        "tensors are warnings. Exit status 1 when any finding is an error.",
    )
    parser.add_argument("servable_dir", type=Path, help="directory of servables")
    parser.add_argument(
        "--servable",
        action="append",
        metavar="NAME",
        help="servable to check (repeatable; default: every folder with a servable_config.py)",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument(
        "--dec-key-file",
        type=Path,
        metavar="PATH",
        help="key file of encrypted model files (as msq-worker --dec-key-file)",
    )
    parser.add_argument(
        "--dec-mode",
        choices=DEC_MODES,
        default=DEFAULT_DEC_MODE,
        help="how the model files were encrypted (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Check the servables; 1 if any finding is an error, 2 if there is nothing to check."""
    servable_dir: Path = args.servable_dir
    names: list[str] = args.servable or sorted(
        path.parent.name for path in servable_dir.glob("*/servable_config.py")
    )
    if not servable_dir.is_dir() or not names:
        print(
            f"msq check: no servable (a folder with servable_config.py) in {servable_dir}",
            file=sys.stderr,
        )
        return 2
    try:
        decryption = (
            None if args.dec_key_file is None else read_key_file(args.dec_key_file, args.dec_mode)
        )
    except KeyFileError as exc:
        print(f"msq check: {exc}", file=sys.stderr)
        return 2
    # Imported here: MindSpore takes seconds to import, `--help` should not wait.
    import mindspore as ms  # noqa: PLC0415

    from msq.workers import legacy  # noqa: PLC0415
    from msq.workers.migration import Severity, check_servable  # noqa: PLC0415

    if ms.get_context("device_target") != "CPU":  # once set (or used), it cannot change
        ms.set_device("CPU")  # models load as on a CPU worker (threads: MindSpore's default)
    # The check maps removed modules itself to look past them; the findings say so already.
    logging.getLogger(legacy.__name__).setLevel(logging.ERROR)
    findings = [f for name in names for f in check_servable(servable_dir, name, decryption)]
    errors = sum(f.severity is Severity.ERROR for f in findings)
    if args.json:
        document = {
            "servables": names,
            "errors": errors,
            "warnings": len(findings) - errors,
            "findings": [asdict(finding) for finding in findings],
        }
        print(json.dumps(document, indent=2))
    else:
        out = Console(highlight=False)
        if findings:
            out.print(_table(findings))
        out.print(Text(_summary(names, findings, errors)))
    return 1 if errors else 0


def _table(findings: list[Finding]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_lines=True)
    for column in ("servable", "severity", "where", "problem", "fix"):
        table.add_column(column, overflow="fold")
    for f in findings:
        severity = Text(f.severity, style=_STYLES[f.severity])
        table.add_row(Text(f.servable), severity, Text(f.where), Text(f.problem), Text(f.fix))
    return table


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _summary(names: list[str], findings: list[Finding], errors: int) -> str:
    checked = f"{_count(len(names), 'servable')} ({', '.join(names)})"
    if not findings:
        return f"no problems found in {checked}"
    warnings = _count(len(findings) - errors, "warning")
    return f"{_count(errors, 'error')}, {warnings} in {checked}"
