"""Deployment settings: devices, the TOML file, flags over it, validation, `--print-config`."""

from __future__ import annotations

from pathlib import Path

import pytest

from msq.launcher.cli import build_parser, main
from msq.launcher.config_file import to_toml
from msq.launcher.devices import parse_devices
from msq.launcher.serve import settings_from
from msq.launcher.settings import (
    Deployment,
    Servable,
    SettingsError,
    from_document,
)
from tests.processes import EXAMPLES

CONFIG = f"""\
servable_dir = "{EXAMPLES}"
devices = "cpu:0,1"

[[servables]]
name = "add"

[batching."*"]
max_queue_delay_ms = 20.0

[grpc]
listen = "127.0.0.1:6500"

[grpc.tls]
cert = "server.crt"
key = "server.key"

[rest]
workers = 1

[log]
level = "warning"
"""

PRINTED = f"""\
servable_dir = "{EXAMPLES}"
devices = "cpu:0,1"
workers_per_device = 1

[batching."*"]
max_queue_delay_ms = 20.0

[broker]
frontend = "tcp://127.0.0.1:5600"
backend = "tcp://127.0.0.1:5601"
max_message_mb = 512
heartbeat_interval_s = 1.0
max_redispatch = 2
count = 1
allow_insecure = false
transport = "ipc"

[timeouts]
request_s = 60.0
job_s = 120.0
start_s = 180.0

[grpc]
enabled = true
listen = "127.0.0.1:6500"
max_message_mb = 100
workers = 1

[grpc.tls]
cert = "server.crt"
key = "server.key"
verify_client = false

[rest]
enabled = true
listen = "127.0.0.1:1700"
workers = 1
max_body_mb = 100

[metrics]
host = "127.0.0.1"

[log]
level = "WARNING"
format = "text"
tracing = false

[model_control]
mode = "none"
poll_s = 15.0
load = []
version_policies = []

[[servables]]
name = "add"
version = 0
directory = "{EXAMPLES}"
devices = "cpu:0,1"
workers_per_device = 1
extra_workers = 0
dec_mode = "AES-GCM"
legacy_imports = false
"""


@pytest.mark.parametrize(
    ("text", "devices"),
    [
        ("cpu", ("cpu",)),
        ("CPU:0,1", ("cpu:0", "cpu:1")),
        ("gpu:1,3", ("gpu:1", "gpu:3")),
        ("ascend:0-3,6", ("ascend:0", "ascend:1", "ascend:2", "ascend:3", "ascend:6")),
    ],
)
def test_device_lists(text: str, devices: tuple[str, ...]) -> None:
    assert parse_devices(text) == devices


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpu", "name the gpu ids, e.g. gpu:0"),
        ("tpu:0", "use cpu, cpu:0,1, gpu:0,1 or ascend:0-7"),
        ("gpu:0,0", "a device id is repeated"),
        ("ascend:3-1", "the range 3-1 is empty"),
        ("gpu:-1", "use cpu, cpu:0,1, gpu:0,1 or ascend:0-7"),
    ],
)
def test_bad_device_lists(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid devices {text!r}: {message}"):
        parse_devices(text)


def test_workers_per_device_then_extra_workers_round_robin() -> None:
    servable = Servable("add", devices="gpu:0,1", workers_per_device=2, extra_workers=3)
    assert servable.worker_devices() == [
        "gpu:0",
        "gpu:0",
        "gpu:1",
        "gpu:1",
        "gpu:0",
        "gpu:1",
        "gpu:0",
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"grpc": {"lisen": "x"}},
            "grpc.lisen: unknown key (known: enabled, listen, max_message_mb, tls, workers)",
        ),
        ({"grpc": {"workers": 0}}, "grpc.workers: must be >= 1, not 0"),
        (
            {"grpc": {"workers": 2, "listen": "unix:/tmp/msq.sock"}},
            "grpc.workers: 2 gateway processes need a fixed HOST:PORT, not 'unix:/tmp/msq.sock'",
        ),
        (
            {"grpc": {"workers": 3, "listen": "127.0.0.1:0"}},
            "grpc.workers: 3 gateway processes need a fixed HOST:PORT, not '127.0.0.1:0'",
        ),
        ({"broker": {"transport": "udp"}}, "broker.transport: must be ipc or tcp, not 'udp'"),
        ({"grpc": {"max_message_mb": 600}}, "grpc.max_message_mb: must be 1 to 512, not 600"),
        ({"rest": {"workers": "2"}}, "rest.workers: must be an integer, not '2'"),
        ({"grpc": {"enabled": 1}}, "grpc.enabled: must be true or false, not 1"),
        (
            {"timeouts": {"request_s": float("inf")}},
            "timeouts.request_s: must be a number, not inf",
        ),
        ({"grpc": 3}, "grpc: must be a table, not 3"),
        ({"devices": "gpu"}, "devices: invalid devices 'gpu': name the gpu ids, e.g. gpu:0"),
        ({"servables": [{"version": 1}]}, "servables[0].name: missing"),
        (
            {"servables": {"name": "add"}},
            "servables: must be an array of tables, not {'name': 'add'}",
        ),
        (
            {"servables": [{"name": "a", "dec_mode": "AES"}]},
            "servables[0].dec_mode: must be one of AES-GCM, AES-CBC, SM4-CBC, not 'AES'",
        ),
        (
            {"servables": [{"name": "a", "devices": "cpu:1,1"}]},
            "servables[0].devices: invalid devices 'cpu:1,1': a device id is repeated",
        ),
        (
            {"batching": {"add": {"max_queue_size": 0}}},
            "batching.add: max_queue_size must be an int >= 1, not 0",
        ),
        (
            {"rest": {"tls": {"cert": "c", "key": "k", "verify_client": True}}},
            "rest.tls.verify_client: needs ca (the CA of the client certificates)",
        ),
        ({"grpc": {"tls": {"cert": "c"}}}, "grpc.tls.key: missing"),
        ({"log": {"format": "xml"}}, "log.format: must be text or json, not 'xml'"),
    ],
)
def test_bad_settings_name_their_key(document: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        from_document(document)
    assert str(error.value) == message


def parse(*argv: str) -> Deployment:
    return settings_from(build_parser().parse_args(["serve", *argv]))


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = tmp_path / "msq.toml"
    config.write_text(CONFIG)
    from_file = parse("--config", str(config))
    assert from_file.grpc.listen == "127.0.0.1:6500"
    assert from_file.rest.listen == "127.0.0.1:1500"
    assert [s.name for s in from_file.servables] == ["add"]
    both = parse("--config", str(config), "--grpc", "127.0.0.1:7000", "--servable", "digits",
                 "--max-queue-size", "50", "--no-rest", "--log-level", "error")  # fmt: skip
    assert both.grpc.listen == "127.0.0.1:7000"
    assert both.grpc.tls == from_file.grpc.tls  # the file's TLS stays
    assert [s.name for s in both.servables] == ["digits"]
    assert both.servables[0].devices == "cpu:0,1"
    assert both.batching == {"*": {"max_queue_delay_ms": 20.0, "max_queue_size": 50}}
    assert not both.rest.enabled
    assert both.log.level == "ERROR"


def test_print_config_shows_the_effective_settings_and_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "msq.toml"
    config.write_text(CONFIG)
    assert (
        main(["serve", "--config", str(config), "--rest", "127.0.0.1:1700", "--print-config"]) == 0
    )
    printed = capsys.readouterr().out
    assert printed == PRINTED
    again = tmp_path / "printed.toml"
    again.write_text(printed)
    assert parse("--config", str(again)) == parse(
        "--config", str(config), "--rest", "127.0.0.1:1700"
    )
    assert to_toml(parse("--config", str(again))) == PRINTED


def test_a_bad_file_is_a_clear_error_and_nothing_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "msq.toml"
    config.write_text('servable_dir = "."\n[rest]\nworkers = 0\n')
    assert main(["serve", "--config", str(config)]) == 2
    assert capsys.readouterr().err == "msq serve: rest.workers: must be >= 1, not 0\n"
    config.write_text("[rest\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith(f"msq serve: {config}: not valid TOML: ")
    assert main(["serve", "--config", str(tmp_path / "missing.toml")]) == 2
    assert (
        capsys.readouterr().err
        == f"msq serve: {tmp_path / 'missing.toml'}: No such file or directory\n"
    )
    assert main(["serve", str(tmp_path / "nowhere")]) == 2
    assert (
        capsys.readouterr().err
        == f"msq serve: servable_dir: {tmp_path / 'nowhere'} is not a directory\n"
    )
