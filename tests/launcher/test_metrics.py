"""`msq serve --metrics-base-port`: which process gets which port, and the file-SD document."""

from __future__ import annotations

import json
from pathlib import Path

from msq.launcher.cli import build_parser
from msq.launcher.metrics import expose_metrics, file_sd, write_file_sd
from msq.launcher.serve import processes, settings_from
from tests.processes import EXAMPLES


def test_every_process_gets_the_next_port_and_the_rest_gateway_its_own_address(
    tmp_path: Path,
) -> None:
    args = build_parser().parse_args(
        ["serve", str(EXAMPLES), "--servable", "add", "--workers", "2", "--rest", "0.0.0.0:1600"]
    )
    stages, _ = processes(settings_from(args), tmp_path)
    children = [child for stage in stages for child in stage]
    targets = expose_metrics(children, "127.0.0.1", 9100)
    assert [child.command[-4:] for child in children[:4]] == [
        ["--metrics-host", "127.0.0.1", "--metrics-port", str(port)]
        for port in (9100, 9101, 9102, 9103)
    ]
    assert "--metrics-port" not in children[4].command  # REST: /metrics on its own address
    assert file_sd(targets) == [
        {"targets": ["127.0.0.1:9100"], "labels": {"kind": "broker"}},
        {
            "targets": ["127.0.0.1:9101"],
            "labels": {"kind": "worker", "servable": "add", "version": "1"},
        },
        {
            "targets": ["127.0.0.1:9102"],
            "labels": {"kind": "worker", "servable": "add", "version": "1"},
        },
        {"targets": ["127.0.0.1:9103"], "labels": {"kind": "grpc"}},
        {"targets": ["0.0.0.0:1600"], "labels": {"kind": "rest"}},
    ]
    path = tmp_path / "msq.json"
    write_file_sd(path, targets)
    assert json.loads(path.read_text()) == file_sd(targets)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["msq.json"]


def test_without_a_base_port_no_process_serves_metrics(tmp_path: Path) -> None:
    deployment = settings_from(build_parser().parse_args(["serve", str(EXAMPLES)]))
    assert deployment.metrics.base_port is None
    stages, _ = processes(deployment, tmp_path)
    assert all("--metrics-port" not in child.command for stage in stages for child in stage)
