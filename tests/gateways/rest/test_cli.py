"""`msq-rest-gateway` options, environment settings, and plain gunicorn with our config."""

from __future__ import annotations

import http.client
import json
import ssl
import sys
from pathlib import Path

import pytest

from msq.gateways.rest.cli import gunicorn_options, parse_args
from msq.gateways.rest.state import MB, RestSettings
from msq.launcher.keys import generate
from msq.proto.curve import CurveClient, CurveError, load_key_pair, load_public_key
from msq.security import STANDARD_PAIRS
from tests.gateways.rest_stack import RestStack, call
from tests.processes import Proc, free_port, start_all, stop_all


def test_defaults_listen_on_loopback_port_1500() -> None:
    args = parse_args([])
    assert gunicorn_options(args) == {"bind": ["127.0.0.1:1500"], "workers": 2}
    assert (args.broker, args.max_body_mb, args.http_status_codes) == (
        "tcp://127.0.0.1:5600",
        100.0,
        False,
    )


def test_tls_options_map_to_gunicorn_settings() -> None:
    args = parse_args(
        [
            "--listen",
            "0.0.0.0:8443",
            "--workers",
            "4",
            "--certfile",
            "s.crt",
            "--keyfile",
            "s.key",
            "--ca-certs",
            "ca.crt",
            "--verify-client",
        ]
    )
    assert gunicorn_options(args) == {
        "bind": ["0.0.0.0:8443"],
        "workers": 4,
        "certfile": "s.crt",
        "keyfile": "s.key",
        "ca_certs": "ca.crt",
        "cert_reqs": ssl.CERT_REQUIRED,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--certfile", "s.crt"],
        ["--keyfile", "s.key"],
        ["--verify-client"],
        ["--ca-certs", "ca.crt"],
        ["--workers", "0"],
        ["--max-body-mb", "0"],
        ["--timeout", "-1"],
        ["--broker", "127.0.0.1:5600"],
    ],
)
def test_inconsistent_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2


def test_settings_from_the_environment() -> None:
    environ = {
        "MSQ_BROKER": "tcp://10.0.0.1:7000",
        "MSQ_REST_MAX_BODY_MB": "0.5",
        "MSQ_REST_HTTP_STATUS_CODES": "yes",
        "MSQ_REST_TIMEOUT_S": "2.5",
    }
    assert RestSettings.from_env(environ) == RestSettings("tcp://10.0.0.1:7000", MB // 2, True, 2.5)
    assert RestSettings.from_env({}) == RestSettings()


def test_curve_keys_from_the_environment_and_the_command_line(tmp_path: Path) -> None:
    generate(tmp_path, STANDARD_PAIRS)
    pair, server = tmp_path / "gateway.key_secret", tmp_path / "broker.key"
    expected = CurveClient(load_key_pair(pair), load_public_key(server))
    environ = {"MSQ_CURVE_SECRET_KEY": str(pair), "MSQ_CURVE_SERVER_KEY": str(server)}
    assert RestSettings.from_env(environ).curve == expected
    assert parse_args(
        ["--curve-secret-key", str(pair), "--curve-server-key", str(server)]
    ).curve == (expected)
    with pytest.raises(CurveError, match="--curve-secret-key and --curve-server-key go together"):
        RestSettings.from_env({"MSQ_CURVE_SECRET_KEY": str(pair)})


def plain_gunicorn(broker: str) -> tuple[Proc, int]:
    """gunicorn as documented in msq.gateways.rest.gunicorn_conf (1 worker, real status codes)."""
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "-c", "python:msq.gateways.rest.gunicorn_conf"]
    env = {
        "MSQ_REST_LISTEN": f"127.0.0.1:{port}",
        "MSQ_REST_WORKERS": "1",
        "MSQ_BROKER": broker,
        "MSQ_REST_HTTP_STATUS_CODES": "1",
    }
    return Proc("plain-gunicorn", [*args, "msq.gateways.rest.app:create_app()"], env), port


ADD_BODY = b'{"instances":{"x1":[[1.0,1.0],[1.0,1.0]],"x2":[[1.0,1.0],[1.0,1.0]]}}'


def test_plain_gunicorn_with_our_config_serves_the_app(rest_stack: RestStack) -> None:
    gunicorn, port = plain_gunicorn(rest_stack.frontend)
    (started,) = start_all([gunicorn])
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        assert call(connection, "POST", "/model/add:add_common", ADD_BODY)[2] == (
            b'{"instances":[{"y":[[2.0,2.0],[2.0,2.0]]}]}'
        )
        assert call(connection, "POST", "/model/add:add_common", b"{")[0] == 400
    finally:
        stop_all([started])
    assert started.process.returncode == 0


def test_without_a_broker_answers_are_503_with_retry_after() -> None:
    gunicorn, port = plain_gunicorn(f"tcp://127.0.0.1:{free_port()}")  # nothing listens there
    (started,) = start_all([gunicorn])
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for method, path, body, key in [
            ("GET", "/v2/health/ready", None, "error"),
            ("POST", "/v2/models/add/infer", b'{"inputs": []}', "error"),
            ("POST", "/model/add:add_common", ADD_BODY, "error_msg"),
        ]:
            status, headers, answer = call(connection, method, path, body)
            assert (status, headers["retry-after"]) == (503, "1"), answer
            assert list(json.loads(answer)) == [key]
        assert call(connection, "GET", "/v2/health/live")[0] == 200
    finally:
        stop_all([started])
