"""`msq serve`'s plan: which processes it starts with which options (nothing is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msq.launcher.cli import build_parser, plan
from tests.processes import EXAMPLES


def commands(*argv: str) -> list[list[str]]:
    broker, workers, gateways = plan(build_parser().parse_args(["serve", str(EXAMPLES), *argv]))
    return [child.command for child in (*broker, *workers, *gateways)]


def test_workers_share_the_cores_of_the_host() -> None:
    planned = commands("--workers", "2", "--log-level", "debug")
    workers = [command for command in planned if command[0] == "msq-worker"]
    assert len(workers) == 4  # add and digits, two each
    for command in workers:
        assert command[command.index("--workers-on-host") + 1] == "4"
        assert command[command.index("--log-level") + 1] == "DEBUG"
        assert "--threads" not in command


def test_gateways_can_be_left_out() -> None:
    planned = commands("--servable", "add", "--no-rest")
    assert [command[0] for command in planned] == ["msq-broker", "msq-worker", "msq-grpc-gateway"]


def test_a_directory_without_servables_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no servable"):
        plan(build_parser().parse_args(["serve", str(tmp_path)]))


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", str(EXAMPLES), "--log-level", "loud"])


def test_log_level_format_and_tracing_go_to_every_process() -> None:
    planned = commands("--log-level", "debug", "--log-format", "json", "--tracing")
    assert [command[0] for command in planned] == [
        "msq-broker", "msq-worker", "msq-worker", "msq-grpc-gateway", "msq-rest-gateway",
    ]  # fmt: skip
    for command in planned:
        assert command[-5:] == ["--log-level", "DEBUG", "--log-format", "json", "--tracing"]
    assert all("--tracing" not in command for command in commands())


def test_several_brokers_side_by_side_and_everyone_connects_to_all() -> None:
    planned = commands("--servable", "add", "--brokers", "2")
    assert [command[:5] for command in planned[:2]] == [
        ["msq-broker", "--frontend", "tcp://127.0.0.1:5600", "--backend", "tcp://127.0.0.1:5601"],
        ["msq-broker", "--frontend", "tcp://127.0.0.1:5602", "--backend", "tcp://127.0.0.1:5603"],
    ]
    brokers = {command[0]: command[command.index("--broker") + 1] for command in planned[2:]}
    assert brokers == {
        "msq-worker": "tcp://127.0.0.1:5601,tcp://127.0.0.1:5603",
        "msq-grpc-gateway": "tcp://127.0.0.1:5600,tcp://127.0.0.1:5602",
        "msq-rest-gateway": "tcp://127.0.0.1:5600,tcp://127.0.0.1:5602",
    }


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--brokers", "0"], "--brokers must be at least 1"),
        (["--brokers", "2", "--broker-backend", "ipc:///tmp/b"], "needs tcp://HOST:PORT"),
    ],
)
def test_a_broker_count_that_cannot_be_planned_is_refused(argv: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        plan(build_parser().parse_args(["serve", str(EXAMPLES), *argv]))
