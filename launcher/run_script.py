"""`msq run SCRIPT [ARGS...]`: run an unmodified MindSpore Serving start script
(`serving_server.py`) on msq, with `mindspore_serving.server` aliased to
`msq.launcher.ms_server`, and keep serving until Ctrl-C, SIGTERM or `server.stop()`."""

from __future__ import annotations

import argparse
import runpy
import sys
import traceback
from pathlib import Path

from msq.launcher import config_file, ms_server
from msq.launcher.settings import Deployment, SettingsError, from_document
from msq.process import announce_ready, setup_logging
from msq.workers.compat import mindspore_serving_alias


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `msq run` to the launcher's subcommands."""
    parser = commands.add_parser(
        "run",
        help="run a MindSpore Serving start script (serving_server.py) on msq",
        description="Run SCRIPT as __main__ with `from mindspore_serving import server` "
        "served by msq; keep serving after it returns, until Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML settings the script's calls start from (as `msq serve --config`: broker "
        "endpoints, timeouts, batching, gateway workers, logging)",
    )
    parser.add_argument("script", type=Path, help="the start script")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")


def run(args: argparse.Namespace) -> int:
    """Run the script; 0 once the server it started stops, 1 if the script raised."""
    script: Path = args.script
    if not script.is_file():
        print(f"msq run: {script} is not a file", file=sys.stderr)
        return 2
    try:
        base = from_document(config_file.read(args.config)) if args.config else Deployment()
    except SettingsError as exc:
        print(f"msq run: {exc}", file=sys.stderr)
        return 2
    setup_logging("msq", base.log.level, base.log.format)
    ms_server.configure(base)
    sys.argv = [str(script), *args.args]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        with mindspore_serving_alias():
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            ms_server.stop()
            return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        ms_server.stop()
        return 1
    if ms_server.running():
        announce_ready("msq-run", f"{script} returned; serving until Ctrl-C or SIGTERM")
    ms_server.wait()
    return 0
