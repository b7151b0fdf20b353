"""`msq serve`'s plan: which processes it starts with which options (nothing is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msq.launcher.cli import build_parser, main, plan
from msq.proto.curve import CurveError
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


def test_curve_dir_gives_each_process_its_standard_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert main(["keys", "generate", str(keys)]) == 0
    planned = commands("--servable", "add", "--curve-dir", str(keys))
    options = {command[0]: command[command.index("--curve-secret-key") : -4] for command in planned}
    server_key = ["--curve-server-key", str(keys / "broker.key")]
    assert options == {
        "msq-broker": [
            "--curve-secret-key", str(keys / "broker.key_secret"),
            "--curve-authorized-workers", str(keys / "authorized-workers"),
            "--curve-authorized-gateways", str(keys / "authorized-gateways"),
        ],
        "msq-worker": ["--curve-secret-key", str(keys / "worker.key_secret"), *server_key],
        "msq-grpc-gateway": ["--curve-secret-key", str(keys / "gateway.key_secret"), *server_key],
        "msq-rest-gateway": ["--curve-secret-key", str(keys / "gateway.key_secret"), *server_key],
    }  # fmt: skip
    assert all("--curve-secret-key" not in command for command in commands())


def test_a_curve_dir_without_the_standard_keys_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    assert main(["keys", "generate", str(tmp_path), "--name", "broker"]) == 0
    with pytest.raises(CurveError, match=r"no such key file: .*worker\.key_secret"):
        commands("--curve-dir", str(tmp_path))


def test_allow_insecure_goes_to_the_broker_only() -> None:
    planned = commands("--allow-insecure", "--broker-frontend", "tcp://0.0.0.0:5600")
    assert [command[0] for command in planned if "--allow-insecure" in command] == ["msq-broker"]
