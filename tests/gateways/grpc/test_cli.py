"""Unit tests of `msq-grpc-gateway`'s options (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msq.gateways.grpc.cli import build_parser, main, settings_from
from msq.gateways.grpc.server import GatewaySettings, TLSConfig


def settings(*argv: str) -> GatewaySettings:
    return settings_from(build_parser().parse_args(argv))


def test_defaults() -> None:
    assert settings() == GatewaySettings(
        listen="127.0.0.1:5500",
        broker="tcp://127.0.0.1:5600",
        max_message_mb=100,
        tls=None,
        default_timeout_s=60.0,
    )
    assert settings().max_message_bytes == 100 * 1024 * 1024


def test_several_workers_share_the_port() -> None:
    assert settings("--grpc-workers", "2", "--listen", "127.0.0.1:7000").reuse_port is True
    assert settings("--grpc-workers", "1", "--listen", "unix:/tmp/msq.sock").reuse_port is False


def test_tls_options(tmp_path: Path) -> None:
    cert, key, ca = (tmp_path / name for name in ("c.pem", "k.pem", "ca.pem"))
    for path in (cert, key, ca):
        path.write_text("x")
    assert settings("--tls-cert", str(cert), "--tls-key", str(key)).tls == TLSConfig(cert, key)
    mutual = settings(
        "--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca), "--verify-client"
    )
    assert mutual.tls == TLSConfig(cert, key, ca, verify_client=True)
    with pytest.raises(ValueError, match="no such file"):
        settings("--tls-cert", str(cert), "--tls-key", str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="--verify-client needs --tls-ca"):
        settings("--tls-cert", str(cert), "--tls-key", str(key), "--verify-client")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-ca", "ca.pem"], "need --tls-cert and --tls-key"),
        (["--verify-client"], "need --tls-cert and --tls-key"),
        (["--max-msg-mb", "0"], "1 to 512 MB"),
        (["--max-msg-mb", "513"], "1 to 512 MB"),
        (["--default-timeout", "0"], "must be positive"),
        (["--grpc-workers", "0"], "argument --grpc-workers: must be at least 1, not 0"),
        (
            ["--grpc-workers", "2", "--listen", "unix:/tmp/msq.sock"],
            "2 gateway processes need a fixed HOST:PORT, not 'unix:/tmp/msq.sock'",
        ),
        (
            ["--grpc-workers", "2", "--listen", "127.0.0.1:0"],
            "2 gateway processes need a fixed HOST:PORT, not '127.0.0.1:0'",
        ),
    ],
)
def test_bad_options_exit_with_a_clear_message(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert needle in capsys.readouterr().err
