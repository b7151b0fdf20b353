"""The gRPC gateway warns when protobuf runs its pure-Python implementation.

Importing MindSpore sets PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python in its process, and
children inherit it: a gateway started from such a process decodes several times slower. The
gateway says so at start-up.
"""

from __future__ import annotations

import pytest

from tests.gateways.grpc_processes import gateway
from tests.processes import endpoint

WARNING = "protobuf runs its pure-Python implementation"


@pytest.mark.parametrize(("implementation", "warned"), [("python", True), ("upb", False)])
def test_the_gateway_warns_about_pure_python_protobuf(implementation: str, warned: bool) -> None:
    proc, _ = gateway(endpoint())
    proc.env = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": implementation}
    proc.start()
    try:
        proc.wait_ready()
        assert (WARNING in proc.log()) is warned
    finally:
        proc.stop()
