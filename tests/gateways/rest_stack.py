"""The processes behind the REST gateway tests, started once per session on free ports.

A broker, workers for `add`, `digits` (examples) and the test servables `echo` and `slow`, and
two gateways under gunicorn:

- `plain`: HTTP, the defaults (MindSpore routes answer errors with HTTP 200), 2 workers;
- `strict`: HTTPS with client certificates required, `--http-status-codes`, a 1 MB body
  limit, 1 worker.
"""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.certificates import make_pki
from tests.processes import (
    EXAMPLES,
    Proc,
    broker,
    endpoint,
    free_port,
    start_served,
    stop_all,
    worker,
)

SERVABLES = Path(__file__).resolve().parent / "servables"
STRICT_MAX_BODY_MB = 1


def rest_gateway(frontend: str, *extra: str, name: str = "rest-gateway") -> tuple[Proc, int]:
    """A REST gateway process (not started) for the broker at `frontend`, and its port."""
    port = free_port()
    args = [sys.executable, "-m", "msq.gateways.rest.cli", "--listen", f"127.0.0.1:{port}"]
    return Proc(name, [*args, "--broker", frontend, *extra]), port


@dataclass(frozen=True)
class Certificates:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate (PEM files)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self, *, with_certificate: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if with_certificate:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def make_certificates(directory: Path) -> Certificates:
    """A test CA with a server certificate for 127.0.0.1 and a client certificate."""
    pki = make_pki(directory)
    return Certificates(
        pki.ca.cert, pki.server.cert, pki.server.key, pki.client.cert, pki.client.key
    )


@dataclass
class RestStack:
    """The running processes and how to reach the gateways."""

    frontend: str
    plain_port: int
    strict_port: int
    certificates: Certificates
    procs: list[Proc]

    def plain(self, timeout_s: float = 30.0) -> http.client.HTTPConnection:
        """A connection to the plain gateway."""
        return http.client.HTTPConnection("127.0.0.1", self.plain_port, timeout=timeout_s)

    def stop(self) -> None:
        stop_all(self.procs)
        shutil.rmtree(self.certificates.ca.parent, ignore_errors=True)

    def strict(self, *, with_certificate: bool = True) -> http.client.HTTPSConnection:
        """A connection to the strict gateway (HTTPS, client certificate)."""
        context = self.certificates.client_context(with_certificate=with_certificate)
        return http.client.HTTPSConnection(
            "127.0.0.1", self.strict_port, timeout=30, context=context
        )


def call(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request: status, headers (lower-case names) and the raw body."""
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def post_json(
    connection: http.client.HTTPConnection, path: str, document: Any, **headers: str
) -> tuple[int, Any]:
    """POST a JSON document; the status and the decoded JSON answer."""
    status, _, data = call(connection, "POST", path, json.dumps(document).encode(), headers)
    return status, json.loads(data)


def start_rest_stack() -> RestStack:
    """Start the broker, workers and both gateways (in parallel) and wait until served."""
    frontend, backend = endpoint(), endpoint()
    certificates = make_certificates(Path(tempfile.mkdtemp(prefix="msq-rest-tls-")))
    try:
        return _start_processes(frontend, backend, certificates)
    except BaseException:
        shutil.rmtree(certificates.ca.parent, ignore_errors=True)
        raise


def _start_processes(frontend: str, backend: str, certificates: Certificates) -> RestStack:
    plain, plain_port = rest_gateway(frontend, "--workers", "2", name="rest-plain")
    strict, strict_port = rest_gateway(
        frontend, "--workers", "1", "--http-status-codes",
        "--max-body-mb", str(STRICT_MAX_BODY_MB),
        "--certfile", str(certificates.server_cert), "--keyfile", str(certificates.server_key),
        "--ca-certs", str(certificates.ca), "--verify-client",
        name="rest-strict",
    )  # fmt: skip
    procs = [
        broker(frontend, backend),
        worker(backend, "add", EXAMPLES),
        worker(backend, "digits", EXAMPLES),
        worker(backend, "echo", SERVABLES),
        worker(backend, "slow", SERVABLES),
        plain,
        strict,
    ]
    procs = start_served(procs, frontend, {"add": 1, "digits": 1, "echo": 1, "slow": 1})
    return RestStack(frontend, plain_port, strict_port, certificates, procs)
