"""Set-up shared by msq's programs (`msq`, `msq-broker`, `msq-worker`, the gateways).

One `--log-level` option and one log line format, stop signals, and the "ready" line a
program prints on stderr once it serves (what `msq serve` and the tests wait for).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def add_log_level(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    """Add `--log-level` (any case) to a program's options."""
    parser.add_argument(
        "--log-level",
        default=default,
        type=str.upper,
        choices=LOG_LEVELS,
        help="logging level (default %(default)s)",
    )


def setup_logging(program: str, level: str) -> None:
    """Log to stderr at `level`, each line naming the time, program, level and logger."""
    logging.basicConfig(
        level=level, format=f"%(asctime)s {program} %(levelname)s %(name)s: %(message)s"
    )


def on_stop_signals(
    stop: Callable[[], None], loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Call `stop` on SIGINT or SIGTERM: from `loop` when given, else as a signal handler
    (which must be installed from the main thread)."""
    for signum in STOP_SIGNALS:
        if loop is not None:
            loop.add_signal_handler(signum, stop)
        else:
            signal.signal(signum, lambda *_: stop())


def announce_ready(program: str, detail: str) -> None:
    """Print the line that says `program` serves: "<program> ready: <detail>" on stderr."""
    print(f"{program} ready: {detail}", file=sys.stderr, flush=True)


def is_ready_line(line: str) -> bool:
    """Whether a line of a program's stderr is its `announce_ready` line."""
    return line.startswith("msq-") and " ready" in line
