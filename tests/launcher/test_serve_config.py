"""`msq serve --config`: one TOML file sets TLS for both gateways (mutual TLS for REST), two
CPU "devices" and a batching window; the deployment serves HTTPS and TLS gRPC, runs one worker
per device, and the broker applies the window."""

from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from msq.client import Client, SSLConfig
from tests.certificates import Pki, make_pki
from tests.processes import EXAMPLES, Proc, broker_status, endpoint, free_port

WINDOW_MS = 1500.0


@dataclass
class Deployment:
    proc: Proc
    frontend: str
    grpc: str
    rest: str
    pki: Pki


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("serve-config")
    pki = make_pki(folder)
    frontend = endpoint()
    grpc, rest = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    config = folder / "msq.toml"
    config.write_text(f"""\
servable_dir = "{EXAMPLES}"
devices = "cpu:0,1"

[[servables]]
name = "digits"

[batching.digits]
max_queue_delay_ms = {WINDOW_MS}

[broker]
frontend = "{frontend}"
backend = "{endpoint()}"

[grpc]
listen = "{grpc}"
[grpc.tls]
cert = "{pki.server.cert}"
key = "{pki.server.key}"

[rest]
listen = "{rest}"
workers = 1
[rest.tls]
cert = "{pki.server.cert}"
key = "{pki.server.key}"
ca = "{pki.ca.cert}"
verify_client = true

[log]
level = "WARNING"
""")
    msq = str(Path(sys.executable).with_name("msq"))
    proc = Proc("msq-serve", [msq, "serve", "--config", str(config)]).start()
    try:
        proc.wait_ready(300.0)
        yield Deployment(proc, frontend, grpc, rest, pki)
    finally:
        proc.stop()


def digit(index: int) -> tuple[np.ndarray, int]:
    digits = load_digits()
    return digits.images[index].astype(np.float32), int(digits.target[index])


def test_one_worker_per_cpu_device(deployment: Deployment) -> None:
    status = broker_status(deployment.frontend)
    assert status is not None
    assert [(w.servable, w.device) for w in status.workers] == [("digits", "cpu")] * 2


def test_https_with_a_client_certificate(deployment: Deployment) -> None:
    pixels, label = digit(0)
    body = json.dumps({"instances": {"pixels": pixels.tolist()}}).encode()
    url = f"https://{deployment.rest}/model/digits:predict"
    context = ssl.create_default_context(cafile=str(deployment.pki.ca.cert))
    context.load_cert_chain(str(deployment.pki.client.cert), str(deployment.pki.client.key))
    request = urllib.request.Request(url, body, method="POST")
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        (instance,) = json.loads(response.read())["instances"]
    assert instance["label"] == label
    anonymous = ssl.create_default_context(cafile=str(deployment.pki.ca.cert))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(request, timeout=30, context=anonymous).read()


def test_tls_grpc(deployment: Deployment) -> None:
    pixels, label = digit(0)
    tls = SSLConfig(custom_ca=str(deployment.pki.ca.cert))
    result = Client(deployment.grpc, "digits", "predict", ssl_config=tls, timeout=30).infer(
        {"pixels": pixels}
    )
    assert isinstance(result, list)
    assert int(result[0]["label"]) == label
    plaintext = Client(deployment.grpc, "digits", "predict", timeout=10).infer({"pixels": pixels})
    assert isinstance(plaintext, dict)
    assert plaintext["error"].startswith("Grpc Error, (14, 'unavailable'): ")


def test_the_batching_window_holds_requests_that_find_the_method_busy(
    deployment: Deployment,
) -> None:
    client = Client(deployment.grpc, "digits", "predict", timeout=30,
                    ssl_config=SSLConfig(custom_ca=str(deployment.pki.ca.cert)))  # fmt: skip
    before = route_stats(deployment.frontend)
    samples = [digit(index) for index in range(6)]
    calls = [client.infer_async({"pixels": pixels}) for pixels, _ in samples]
    results = [call.result() for call in calls]
    for result, (_, label) in zip(results, samples, strict=True):
        assert isinstance(result, list)
        assert int(result[0]["label"]) == label
    after = route_stats(deployment.frontend)
    assert after["instances"] - before["instances"] == 6
    assert after["executions"] - before["executions"] < 6  # coalesced into fewer jobs
    assert waited_longer_than(after, 1000.0) - waited_longer_than(before, 1000.0) >= 1


def route_stats(frontend: str) -> dict[str, int | dict[str, object]]:
    status = broker_status(frontend)
    assert status is not None
    routes = status.stats["routes"]
    assert isinstance(routes, list)
    (route,) = [r for r in routes if r["method"] == "predict"]
    return dict(route)


def waited_longer_than(route: dict[str, object], bound_ms: float) -> int:
    """Instances whose time from queueing to dispatch exceeded `bound_ms`."""
    histogram = route["queue_delay_ms"]
    assert isinstance(histogram, dict)
    (within,) = [count for bound, count in histogram["buckets"] if bound == bound_ms]
    return int(histogram["count"]) - int(within)
