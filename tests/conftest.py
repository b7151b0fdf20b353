"""Session-wide fixtures: running broker, workers and gateways shared by the test modules.

Each is started on first use (processes in parallel, on free ports) and stopped when the
session ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.gateways.grpc_processes import GrpcStack, start_grpc_stack
from tests.gateways.rest_stack import RestStack, start_rest_stack
from tests.processes import EXAMPLES, Cluster, start_cluster
from tests.workers.support import OldServables, export_old_servables


@pytest.fixture(scope="session")
def examples_cluster() -> Iterator[Cluster]:
    """A broker with one worker for each example servable (`add`, `digits`)."""
    cluster = start_cluster([("add", EXAMPLES), ("digits", EXAMPLES)])
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def grpc_stack() -> Iterator[GrpcStack]:
    """Broker, workers (`add`, `digits`, `echo`, `slow`) and a plaintext gRPC gateway."""
    stack = start_grpc_stack()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def rest_stack() -> Iterator[RestStack]:
    """Broker, workers (`add`, `digits`, `echo`, `slow`) and two REST gateways."""
    stack = start_rest_stack()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def old_servables(tmp_path_factory: pytest.TempPathFactory) -> OldServables:
    """Servables written for MindSpore Serving 1.x (resnet1x, lenet1x) and an encrypted one
    (secret), with their models and key file."""
    return export_old_servables(tmp_path_factory.mktemp("old"))


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level after a test set them up (setup_logging)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
