"""`msq serve`'s plan: which processes it starts with which options (nothing is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msq.launcher.cli import build_parser, main
from msq.launcher.plan import Stages, declares_distributed, on_host, plan
from msq.launcher.serve import settings_from
from msq.launcher.settings import SettingsError
from tests.processes import EXAMPLES


def stages(workdir: Path, *argv: str) -> Stages:
    return plan(settings_from(build_parser().parse_args(["serve", str(EXAMPLES), *argv])), workdir)


def commands(workdir: Path, *argv: str) -> list[list[str]]:
    return [child.command for stage in stages(workdir, *argv) for child in stage]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_workers_share_the_cores_of_the_host(tmp_path: Path) -> None:
    planned = commands(tmp_path, "--workers", "2", "--log-level", "debug")
    workers = [command for command in planned if command[0] == "msq-worker"]
    assert len(workers) == 8  # add, digits, tp_mlp and tp_mlp_single, two each
    for command in workers:
        assert option(command, "--workers-on-host") == "8"
        assert option(command, "--log-level") == "DEBUG"
        assert "--threads" not in command


def test_each_device_gets_its_workers(tmp_path: Path) -> None:
    _, workers, _ = stages(tmp_path, "--servable", "add", "--device", "cpu:0,1", "--workers", "2")
    assert [worker.name for worker in workers] == [
        "worker add cpu:0 #1", "worker add cpu:0 #2", "worker add cpu:1 #3", "worker add cpu:1 #4",
    ]  # fmt: skip
    assert {option(worker.command, "--device") for worker in workers} == {"cpu"}
    _, workers, _ = stages(tmp_path, "--servable", "add:2", "--device", "ascend:0-2")
    assert [option(w.command, "--device") for w in workers] == ["ascend:0", "ascend:1", "ascend:2"]
    assert {option(w.command, "--servable") for w in workers} == {"add:2"}


def test_legacy_imports_go_to_every_worker_and_only_when_asked(tmp_path: Path) -> None:
    workers = [c for c in commands(tmp_path, "--legacy-imports") if c[0] == "msq-worker"]
    assert [c.count("--legacy-imports") for c in workers] == [1, 1, 1, 1]
    assert all("--legacy-imports" not in c for c in commands(tmp_path))


def test_gateways_can_be_left_out(tmp_path: Path) -> None:
    planned = commands(tmp_path, "--servable", "add", "--no-rest")
    assert [command[0] for command in planned] == ["msq-broker", "msq-worker", "msq-grpc-gateway"]


def test_a_directory_without_servables_is_refused(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", str(tmp_path)])
    with pytest.raises(SettingsError, match=f"^servable_dir: no servable .* in {tmp_path}$"):
        settings_from(args)


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", str(EXAMPLES), "--log-level", "loud"])


def test_log_level_format_and_tracing_go_to_every_process(tmp_path: Path) -> None:
    planned = commands(tmp_path, "--log-level", "debug", "--log-format", "json", "--tracing")
    assert [command[0] for command in planned] == [
        "msq-broker", *["msq-worker"] * 4, "msq-grpc-gateway", "msq-rest-gateway",
    ]  # fmt: skip
    for command in planned:
        assert command[-5:] == ["--log-level", "DEBUG", "--log-format", "json", "--tracing"]
    assert all("--tracing" not in command for command in commands(tmp_path))


def test_tls_timeouts_and_limits_reach_the_gateways_and_the_broker(tmp_path: Path) -> None:
    broker, _, (grpc, rest) = stages(
        tmp_path,
        "--servable", "add",
        "--grpc-tls-cert", "g.crt", "--grpc-tls-key", "g.key",
        "--grpc-tls-ca", "ca.crt", "--grpc-verify-client",
        "--rest-tls-cert", "r.crt", "--rest-tls-key", "r.key",
        "--default-timeout", "7.5", "--job-timeout", "30",
        "--grpc-max-msg-mb", "200", "--rest-max-body-mb", "20", "--rest-workers", "3",
    )  # fmt: skip
    assert grpc.command[:15] == [
        "msq-grpc-gateway", "--listen", "127.0.0.1:5500", "--broker", "tcp://127.0.0.1:5600",
        "--max-msg-mb", "200", "--default-timeout", "7.5",
        "--tls-cert", "g.crt", "--tls-key", "g.key", "--tls-ca", "ca.crt",
    ]  # fmt: skip
    assert grpc.command[15] == "--verify-client"
    assert rest.command[:15] == [
        "msq-rest-gateway", "--listen", "127.0.0.1:1500", "--broker", "tcp://127.0.0.1:5600",
        "--workers", "3", "--max-body-mb", "20", "--timeout", "7.5",
        "--certfile", "r.crt", "--keyfile", "r.key",
    ]  # fmt: skip
    assert "--verify-client" not in rest.command
    assert option(broker[0].command, "--default-timeout") == "7.5"
    assert option(broker[0].command, "--job-timeout") == "30.0"
    assert "--config" not in broker[0].command  # no batching settings: nothing to write


def test_batching_settings_go_to_the_broker_as_a_file(tmp_path: Path) -> None:
    config = tmp_path / "msq.toml"
    config.write_text('[batching.add]\npreferred_size = 4\n[batching."*"]\nmax_queue_size = 9\n')
    (broker,), _, _ = stages(tmp_path, "--config", str(config), "--max-queue-delay-ms", "5")
    path = Path(option(broker.command, "--config"))
    assert path.parent == tmp_path
    assert path.read_text() == (
        '[batching.add]\npreferred_size = 4\n\n[batching."*"]\nmax_queue_size = 9\n'
        "max_queue_delay_ms = 5.0\n"
    )


def test_the_decryption_key_file_reaches_every_worker_and_the_key_never(tmp_path: Path) -> None:
    _, workers, _ = stages(tmp_path, "--dec-key-file", "/keys/k", "--dec-mode", "AES-CBC")
    assert len(workers) == 4
    for worker in workers:
        assert option(worker.command, "--dec-key-file") == "/keys/k"
        assert option(worker.command, "--dec-mode") == "AES-CBC"


def test_several_brokers_side_by_side_and_everyone_connects_to_all(tmp_path: Path) -> None:
    planned = commands(tmp_path, "--servable", "add", "--brokers", "2")
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


def test_this_hosts_processes_reach_the_brokers_over_ipc_in_the_private_folder(
    tmp_path: Path,
) -> None:
    deployment = settings_from(
        build_parser().parse_args(["serve", str(EXAMPLES), "--servable", "add", "--brokers", "2"])
    )
    planned = [child.command for stage in plan(on_host(deployment, tmp_path), tmp_path)
               for child in stage]  # fmt: skip
    ipc = f"ipc://{tmp_path}"
    assert [command[:5] for command in planned[:2]] == [
        ["msq-broker", "--frontend", f"{ipc}/broker-1-frontend,tcp://127.0.0.1:5600",
         "--backend", f"{ipc}/broker-1-backend,tcp://127.0.0.1:5601"],
        ["msq-broker", "--frontend", f"{ipc}/broker-2-frontend,tcp://127.0.0.1:5602",
         "--backend", f"{ipc}/broker-2-backend,tcp://127.0.0.1:5603"],
    ]  # fmt: skip
    brokers = {command[0]: command[command.index("--broker") + 1] for command in planned[2:]}
    assert brokers == {
        "msq-worker": f"{ipc}/broker-1-backend,{ipc}/broker-2-backend",
        "msq-grpc-gateway": f"{ipc}/broker-1-frontend,{ipc}/broker-2-frontend",
        "msq-rest-gateway": f"{ipc}/broker-1-frontend,{ipc}/broker-2-frontend",
    }


def test_tcp_transport_and_ipc_endpoints_are_used_as_they_are(tmp_path: Path) -> None:
    def planned(*argv: str) -> list[list[str]]:
        args = build_parser().parse_args(["serve", str(EXAMPLES), "--servable", "add", *argv])
        deployment = on_host(settings_from(args), tmp_path)
        return [child.command for stage in plan(deployment, tmp_path) for child in stage]

    tcp = planned("--broker-transport", "tcp")
    assert tcp[0][:5] == [
        "msq-broker", "--frontend", "tcp://127.0.0.1:5600", "--backend", "tcp://127.0.0.1:5601",
    ]  # fmt: skip
    assert option(tcp[1], "--broker") == "tcp://127.0.0.1:5601"
    given = planned("--broker-frontend", "ipc:///run/f", "--broker-backend", "tcp://[::1]:7001")
    assert given[0][:5] == [
        "msq-broker", "--frontend", "ipc:///run/f",
        "--backend", f"ipc://{tmp_path}/broker-1-backend,tcp://[::1]:7001",
    ]  # fmt: skip
    assert option(given[-1], "--broker") == "ipc:///run/f"


def test_an_ipc_socket_path_too_long_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / ("x" * 100)
    args = build_parser().parse_args(
        ["serve", str(EXAMPLES), "--servable", "add", "--no-grpc", "--no-rest"]
    )
    with pytest.raises(
        SettingsError, match=r"^broker.runtime_dir: the socket path .* is longer than 107 bytes"
    ):
        plan(on_host(settings_from(args), folder), tmp_path)


def test_grpc_workers_reach_the_grpc_gateway(tmp_path: Path) -> None:
    (grpc,) = [c for c in commands(tmp_path, "--grpc-workers", "3") if c[0] == "msq-grpc-gateway"]
    assert option(grpc, "--grpc-workers") == "3"
    (grpc,) = [c for c in commands(tmp_path) if c[0] == "msq-grpc-gateway"]
    assert option(grpc, "--grpc-workers") == "1"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--brokers", "0"], "broker.count: must be >= 1, not 0"),
        (["--brokers", "2", "--broker-backend", "ipc:///tmp/b"], "need tcp://HOST:PORT endpoints"),
    ],
)
def test_a_broker_count_that_cannot_be_planned_is_refused(
    tmp_path: Path, argv: list[str], problem: str
) -> None:
    with pytest.raises(SettingsError, match=problem):
        stages(tmp_path, *argv)


def test_curve_dir_gives_each_process_its_standard_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert main(["keys", "generate", str(keys)]) == 0
    planned = commands(tmp_path, "--servable", "add", "--curve-dir", str(keys))
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
    assert all("--curve-secret-key" not in command for command in commands(tmp_path))


def test_a_curve_dir_without_the_standard_keys_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    assert main(["keys", "generate", str(tmp_path), "--name", "broker"]) == 0
    with pytest.raises(
        SettingsError, match=r"broker.curve_dir: no such key file: .*worker\.key_secret"
    ):
        commands(tmp_path, "--curve-dir", str(tmp_path))


def test_allow_insecure_goes_to_the_broker_only(tmp_path: Path) -> None:
    planned = commands(tmp_path, "--allow-insecure", "--broker-frontend", "tcp://0.0.0.0:5600")
    assert [command[0] for command in planned if "--allow-insecure" in command] == ["msq-broker"]


def test_a_distributed_servables_worker_gets_every_device_for_its_ranks(tmp_path: Path) -> None:
    _, workers, _ = stages(
        tmp_path, "--servable", "tp_mlp", "--servable", "add", "--device", "ascend:0-3"
    )
    devices = {w.name: option(w.command, "--device") for w in workers}
    assert devices == {
        "worker tp_mlp ascend:0-3 #1": "ascend:0-3",
        **{f"worker add ascend:{n} #{n + 1}": f"ascend:{n}" for n in range(4)},
    }


@pytest.mark.parametrize(
    ("config", "distributed"),
    [
        (EXAMPLES / "tp_mlp" / "servable_config.py", True),
        (EXAMPLES / "add" / "servable_config.py", False),
        # MindSpore Serving's older one-process declaration has the same name
        (Path(__file__).parents[1] / "workers/servables/legacy/servable_config.py", False),
        (Path("no/such/servable_config.py"), False),
    ],
)
def test_a_distributed_declaration_is_found_without_running_the_config(
    config: Path, distributed: bool
) -> None:
    assert declares_distributed(config) is distributed
