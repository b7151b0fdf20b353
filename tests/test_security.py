"""`msq.security`: the shared CURVE options and the rule for non-loopback binds."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from msq.launcher.keys import generate
from msq.proto.curve import GATEWAYS_DOMAIN, WORKERS_DOMAIN, CurveError, load_key_pair
from msq.security import (
    STANDARD_PAIRS,
    add_curve_client_options,
    add_curve_server_options,
    check_binds,
    curve_client_from,
    curve_server_from,
)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate(tmp_path, STANDARD_PAIRS)
    return tmp_path


def client_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_curve_client_options(parser)
    return parser.parse_args(argv)


def server_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_curve_server_options(parser)
    return parser.parse_args(argv)


def test_a_client_gets_its_pair_and_the_brokers_public_key(keys: Path) -> None:
    assert curve_client_from(client_args()) is None
    curve = curve_client_from(
        client_args(
            "--curve-secret-key", str(keys / "worker.key_secret"),
            "--curve-server-key", str(keys / "broker.key"),
        )
    )  # fmt: skip
    assert curve is not None
    assert curve.keys == load_key_pair(keys / "worker.key_secret")
    assert curve.server_key == load_key_pair(keys / "broker.key_secret").public
    with pytest.raises(CurveError, match="--curve-secret-key and --curve-server-key go together"):
        curve_client_from(client_args("--curve-server-key", str(keys / "broker.key")))


def test_the_broker_gets_one_allow_list_per_role(keys: Path) -> None:
    assert curve_server_from(server_args()) is None
    curve = curve_server_from(
        server_args(
            "--curve-secret-key", str(keys / "broker.key_secret"),
            "--curve-authorized-workers", str(keys / "authorized-workers"),
            "--curve-authorized-gateways", str(keys / "authorized-gateways"),
        )
    )  # fmt: skip
    assert curve is not None
    assert curve.authorized == {
        WORKERS_DOMAIN: {load_key_pair(keys / "worker.key_secret").public},
        GATEWAYS_DOMAIN: {load_key_pair(keys / "gateway.key_secret").public},
    }
    with pytest.raises(CurveError, match="needs --curve-authorized-workers and"):
        curve_server_from(server_args("--curve-secret-key", str(keys / "broker.key_secret")))
    with pytest.raises(CurveError, match="need --curve-secret-key"):
        curve_server_from(server_args("--curve-authorized-workers", str(keys)))


def test_a_non_loopback_bind_without_curve_is_refused_unless_allowed(
    keys: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local = ["tcp://127.0.0.1:5600", "ipc:///tmp/msq-backend"]
    check_binds(local, None, allow_insecure=False)
    with pytest.raises(CurveError, match=r"^refusing to bind tcp://\*:5601 without CURVE: "):
        check_binds([local[0], "tcp://*:5601"], None, allow_insecure=False)
    # A broker binding an ipc:// endpoint beside a tcp:// one (comma-separated): each counts.
    check_binds([",".join(local)], None, allow_insecure=False)
    with pytest.raises(CurveError, match=r"^refusing to bind tcp://0\.0\.0\.0:5600 without "):
        check_binds([f"{local[1]},tcp://0.0.0.0:5600"], None, allow_insecure=False)
    curve = curve_server_from(
        server_args(
            "--curve-secret-key", str(keys / "broker.key_secret"),
            "--curve-authorized-workers", str(keys / "authorized-workers"),
            "--curve-authorized-gateways", str(keys / "authorized-gateways"),
        )
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, "msq.security"):
        check_binds(["tcp://0.0.0.0:5600"], curve, allow_insecure=False)
        assert caplog.records == []
        check_binds(["tcp://0.0.0.0:5600", local[0]], None, allow_insecure=True)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "INSECURE (--allow-insecure): tcp://0.0.0.0:5600 bound without CURVE;"
    )
