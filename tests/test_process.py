"""`msq.process`: the set-up every msq program shares."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys

import pytest

from msq.process import (
    LogThrottle,
    add_log_level,
    bind_log_fields,
    is_ready_line,
    log_fields,
    log_options,
    on_stop_signals,
    setup_logging,
)


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


def test_log_format_option() -> None:
    parser = argparse.ArgumentParser()
    add_log_level(parser)
    assert parser.parse_args([]).log_format == "text"
    args = parser.parse_args(["--log-format", "JSON", "--log-level", "debug"])
    assert log_options(args) == ["--log-level", "DEBUG", "--log-format", "json"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-format", "xml"])


def test_text_lines_end_with_the_requests_they_concern(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("msq-x", "INFO")
    log = logging.getLogger("msq.x")
    log.info("plain")
    log.info("one", extra={"request_id": "r1"})
    with log_fields(request_ids=["a", "b"]):
        log.info("job")
        log.info("own", extra={"request_ids": ["c"]})
    log.info("after")
    lines = [line.split(" msq-x ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        "INFO msq.x: plain",
        "INFO msq.x: one [request_id=r1]",
        "INFO msq.x: job [request_ids=a,b]",
        "INFO msq.x: own [request_ids=c]",
        "INFO msq.x: after",
    ]


def test_json_lines_carry_time_program_level_logger_message_and_request_ids(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("msq-x", "DEBUG", "json")
    log = logging.getLogger("msq.x")
    with log_fields(request_id="r\u00e9-1"):
        log.debug("hello %s", "there")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    log.warning("quiet", extra={"request_ids": ("a", "b")})
    first, second, third = map(json.loads, capsys.readouterr().err.splitlines())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("time"))
    assert first == {
        "program": "msq-x",
        "level": "DEBUG",
        "logger": "msq.x",
        "message": "hello there",
        "request_id": "r\u00e9-1",
    }
    assert second["request_id"] == "r\u00e9-1" and second["message"] == "failed"
    assert second["exception"].startswith("Traceback") and "ValueError: boom" in second["exception"]
    assert third["request_ids"] == ["a", "b"] and "request_id" not in third


def test_bound_fields_belong_to_their_asyncio_task(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("msq-x", "INFO", "json")
    log = logging.getLogger("msq.x")

    async def handle(rid: str, release: asyncio.Event) -> None:
        bind_log_fields(request_id=rid)
        await release.wait()
        log.info(rid)

    async def main() -> None:
        release = asyncio.Event()
        tasks = [asyncio.create_task(handle(rid, release)) for rid in ("a", "b")]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*tasks)
        log.info("outside")

    asyncio.run(main())
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["message"], line.get("request_id")) for line in lines] == [
        ("a", "a"),
        ("b", "b"),
        ("outside", None),
    ]


def test_log_throttle_logs_one_line_per_interval_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    throttle = LogThrottle(logging.getLogger("throttled"), 60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="throttled"):
        logged = [throttle.log(logging.WARNING, "a", "bad %s", i) for i in range(5)]
        assert throttle.log(logging.WARNING, "b", "other kind")
        now[0] += 59.9
        assert not throttle.log(logging.WARNING, "a", "bad %s", 5)
        now[0] += 0.1
        assert throttle.log(logging.WARNING, "a", "bad %s", 6)
        assert throttle.log(logging.WARNING, "b", "other kind again")
        now[0] += 60.0
        assert throttle.log(logging.WARNING, "a", "bad %s", 7)
    assert logged == [True, False, False, False, False]
    assert [record.getMessage() for record in caplog.records] == [
        "bad 0",
        "other kind",
        "bad 6 (and 5 more like it not logged since 60 s ago)",
        "other kind again",
        "bad 7",
    ]
