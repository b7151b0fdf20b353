"""`msq.process`: the set-up every msq program shares."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

import pytest

from msq.process import add_log_level, is_ready_line, on_stop_signals


@pytest.mark.parametrize(("given", "level"), [([], "WARNING"), (["--log-level", "debug"], "DEBUG")])
def test_log_level_option(given: list[str], level: str) -> None:
    parser = argparse.ArgumentParser()
    add_log_level(parser, default="WARNING")
    assert parser.parse_args(given).log_level == level


def test_an_unknown_log_level_is_refused() -> None:
    parser = argparse.ArgumentParser()
    add_log_level(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-level", "chatty"])


@pytest.mark.parametrize(
    ("line", "ready"),
    [
        ("msq-broker ready: frontend tcp://127.0.0.1:5600, backend tcp://127.0.0.1:5601", True),
        ("msq-worker ready: add v1 on cpu", True),
        ("2026-01-01 msq-worker INFO msq.workers.loop: registered", False),
        ("msq ready:", False),
    ],
)
def test_ready_lines(line: str, ready: bool) -> None:
    assert is_ready_line(line) is ready


def test_stop_signals_call_stop() -> None:
    stopped: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        on_stop_signals(lambda: stopped.append(1))
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert stopped == [1, 1]


def test_logging_and_ready_line_format() -> None:
    code = (
        "import logging; from msq.process import setup_logging, announce_ready;"
        "setup_logging('msq-x', 'INFO'); logging.getLogger('msq.x').info('hello');"
        "logging.getLogger('msq.x').debug('hidden'); announce_ready('msq-x', 'on 1')"
    )
    lines = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(" msq-x INFO msq.x: hello")
    assert lines[1] == "msq-x ready: on 1"
    assert is_ready_line(lines[1])
