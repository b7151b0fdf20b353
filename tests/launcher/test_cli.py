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


def test_legacy_imports_go_to_every_worker_and_only_when_asked() -> None:
    workers = [c for c in commands("--legacy-imports") if c[0] == "msq-worker"]
    assert [c.count("--legacy-imports") for c in workers] == [1, 1]
    assert all("--legacy-imports" not in c for c in commands())


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
