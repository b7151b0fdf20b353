"""Session-wide fixtures: one broker with workers for the bundled example servables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.processes import EXAMPLES, Cluster, start_cluster


@pytest.fixture(scope="session")
def examples_cluster() -> Iterator[Cluster]:
    """A broker with one worker for each example servable (`add`, `digits`)."""
    cluster = start_cluster([("add", EXAMPLES), ("digits", EXAMPLES)])
    yield cluster
    cluster.stop()
