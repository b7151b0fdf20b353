"""TLS and mutual TLS on msq-grpc-gateway, with certificates made at test time: a TLS gateway
and an mTLS gateway in front of the shared broker and workers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import tritonclient.grpc as triton

from msq.client import Client, SSLConfig
from tests.certificates import Pki, make_pki
from tests.gateways.grpc_processes import GrpcStack, gateway
from tests.processes import Proc, start_all, stop_all

ONES = {"x1": np.ones((2, 2), np.float32), "x2": np.ones((2, 2), np.float32)}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass(frozen=True)
class TlsGateways:
    tls: str  # address of the gateway that serves TLS
    mtls: str  # address of the gateway that also requires client certificates


@pytest.fixture(scope="module")
def gateways(grpc_stack: GrpcStack, pki: Pki) -> Iterator[TlsGateways]:
    server = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    tls, tls_address = gateway(grpc_stack.frontend, *server, name="grpc-tls")
    mtls, mtls_address = gateway(
        grpc_stack.frontend,
        *server,
        "--tls-ca",
        str(pki.ca.cert),
        "--verify-client",
        name="grpc-mtls",
    )
    procs: list[Proc] = start_all([tls, mtls])
    yield TlsGateways(tls_address, mtls_address)
    stop_all(procs)


def add(address: str, ssl_config: SSLConfig | None) -> object:
    return Client(address, "add", "add_common", ssl_config=ssl_config, timeout=10).infer(ONES)


def assert_sum(result: object) -> None:
    assert isinstance(result, list)
    np.testing.assert_array_equal(result[0]["y"], np.full((2, 2), 2.0, np.float32))


def assert_refused(result: object) -> None:
    assert isinstance(result, dict)
    assert result["error"].startswith("Grpc Error, (14, 'unavailable'): ")


def test_tls(gateways: TlsGateways, pki: Pki) -> None:
    assert_sum(add(gateways.tls, SSLConfig(custom_ca=pki.ca.cert)))
    assert_refused(add(gateways.tls, None))  # plaintext to a TLS port
    assert_refused(add(gateways.tls, SSLConfig()))  # the system's roots do not know our CA


def test_mutual_tls(gateways: TlsGateways, pki: Pki) -> None:
    good = SSLConfig(certificate=pki.client.cert, private_key=pki.client.key, custom_ca=pki.ca.cert)
    assert_sum(add(gateways.mtls, good))
    assert_refused(add(gateways.mtls, SSLConfig(custom_ca=pki.ca.cert)))  # no client certificate
    rogue = SSLConfig(pki.rogue_client.cert, pki.rogue_client.key, pki.ca.cert)
    assert_refused(add(gateways.mtls, rogue))


def test_ssl_config_needs_certificate_and_key_together(pki: Pki) -> None:
    with pytest.raises(ValueError, match="certificate and private_key go together"):
        Client("127.0.0.1:1", "add", "add_common", ssl_config=SSLConfig(pki.client.cert))


def test_tritonclient_over_mutual_tls(gateways: TlsGateways, pki: Pki) -> None:
    client = triton.InferenceServerClient(
        gateways.mtls,
        ssl=True,
        root_certificates=str(pki.ca.cert),
        private_key=str(pki.client.key),
        certificate_chain=str(pki.client.cert),
    )
    assert client.is_server_ready()
    assert client.is_model_ready("add.add_common")
