"""Set-up shared by msq's programs (`msq`, `msq-broker`, `msq-worker`, the gateways).

One `--log-level` and `--log-format` option and one log line format (text or JSON lines),
the request ids of log lines, rate-limited log lines (`LogThrottle`), stop signals, and the
"ready" line a program prints on stderr once it serves (what `msq serve` and the tests wait
for).

A log line that concerns requests carries their ids as the record attributes `request_id`
(one request) or `request_ids` (a job's requests): given with `extra=` or bound for a block of
code with `log_fields` (a context variable, so each asyncio task or thread has its own). They
are read only when a line is emitted; text lines end with ` [request_id=...]`, JSON lines
have them as keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import datetime
import json
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import TypeAlias

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
#: The record attributes naming the requests a log line concerns, in the order they print.
REQUEST_FIELDS = ("request_id", "request_ids")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_FIELDS: contextvars.ContextVar[Mapping[str, object] | None] = contextvars.ContextVar(
    "msq_log_fields", default=None
)
LogFieldsToken: TypeAlias = contextvars.Token[Mapping[str, object] | None]


def add_log_level(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    """Add `--log-level` (any case), `--log-format` (text or json) and `--tracing` (see
    `msq.tracing`) to a program's options."""
    parser.add_argument(
        "--log-level",
        default=default,
        type=str.upper,
        choices=LOG_LEVELS,
        help="logging level (default %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        type=str.lower,
        choices=LOG_FORMATS,
        help="log lines as text or as JSON objects, one a line (default %(default)s)",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="export OpenTelemetry spans (also MSQ_TRACING=1; needs msq[tracing])",
    )


def log_options(args: argparse.Namespace) -> list[str]:
    """The `add_log_level` options of `args`, to pass on to a child program."""
    tracing = ["--tracing"] if args.tracing else []
    return ["--log-level", args.log_level, "--log-format", args.log_format, *tracing]


def setup_logging(program: str, level: str, log_format: str = "text") -> None:
    """Log to stderr at `level`, each line naming the time, program, level and logger (and
    the requests it concerns): as text, or as one JSON object a line."""
    handler = logging.StreamHandler()
    handler.addFilter(_add_bound_fields)
    handler.setFormatter(JsonFormatter(program) if log_format == "json" else TextFormatter(program))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def bind_log_fields(**fields: object) -> LogFieldsToken:
    """Add `fields` (e.g. `request_id=...`) to every line logged from now on in this thread or
    asyncio task (a line's own `extra=` wins); `unbind_log_fields(token)` undoes it."""
    return _FIELDS.set({**(_FIELDS.get() or {}), **fields})


def unbind_log_fields(token: LogFieldsToken) -> None:
    """Undo the `bind_log_fields` call that returned `token` (and any binding made since)."""
    _FIELDS.reset(token)


@contextlib.contextmanager
def log_fields(**fields: object) -> Iterator[None]:
    """`bind_log_fields(**fields)` for the lines logged in this block."""
    token = bind_log_fields(**fields)
    try:
        yield
    finally:
        unbind_log_fields(token)


def _add_bound_fields(record: logging.LogRecord) -> bool:
    """Handler filter: copy the fields bound by `log_fields` onto an emitted record."""
    for name, value in (_FIELDS.get() or {}).items():
        if not hasattr(record, name):
            setattr(record, name, value)
    return True


def _request_fields(record: logging.LogRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in REQUEST_FIELDS if hasattr(record, name)}


class TextFormatter(logging.Formatter):
    """`TIME PROGRAM LEVEL LOGGER: MESSAGE [request_id=ID]` (`request_ids=A,B` for several)."""

    def __init__(self, program: str) -> None:
        super().__init__(f"%(asctime)s {program} %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        fields = _request_fields(record)
        if not fields:
            return line
        shown = " ".join(
            f"{name}={','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}"
            for name, value in fields.items()
        )
        return f"{line} [{shown}]"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), program, level, logger, message, the
    request id(s) when the line concerns requests, and the exception's traceback if any."""

    def __init__(self, program: str) -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        document: dict[str, object] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "program": self.program,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in _request_fields(record).items():
            document[name] = list(value) if isinstance(value, (list, tuple)) else value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class LogThrottle:
    """At most one log line per `interval_s` for each kind of event (a small fixed set, such as
    method names); the next line logged for a kind says how many were left out since the last.
    For events a client can cause at any rate, so that they cannot flood the log."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._last_logged: dict[str, float] = {}
        self._left_out: Counter[str] = Counter()

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """Log `message % args` at `level` unless a line of `kind` was logged less than
        `interval_s` ago; whether it was logged."""
        now = self._clock()
        last = self._last_logged.get(kind)
        if last is not None and now - last < self._interval_s:
            self._left_out[kind] += 1
            return False
        self._last_logged[kind] = now
        left_out = self._left_out.pop(kind, 0)
        if left_out:
            message = f"{message} (and {left_out} more like it not logged since %.0f s ago)"
            args = (*args, now - (last or now))
        self._logger.log(level, message, *args)
        return True


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
