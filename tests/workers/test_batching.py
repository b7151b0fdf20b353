"""Batching settings: allowed sizes, the worker's override and each method's policy."""

from __future__ import annotations

import pytest

from msq.proto.batching import BatchPolicy
from msq.workers.batching import BatchingConfig, power_of_two_sizes, resolve


@pytest.mark.parametrize(
    ("max_size", "sizes"),
    [
        (1, (1,)),
        (2, (1, 2)),
        (8, (1, 2, 4, 8)),
        (48, (1, 2, 4, 8, 16, 32, 48)),
        (64, (1, 2, 4, 8, 16, 32, 64)),
    ],
)
def test_power_of_two_sizes(max_size: int, sizes: tuple[int, ...]) -> None:
    assert power_of_two_sizes(max_size) == sizes


def test_defaults() -> None:
    settings = resolve(None)
    assert settings.dynamic_sizes == (1, 2, 4, 8, 16, 32, 64)
    assert settings.policy(None) == BatchPolicy((1, 2, 4, 8, 16, 32, 64), 64, 2.0, 10000)
    assert settings.policy((4,)) == BatchPolicy((4,), 4, 2.0, 10000)


def test_servable_settings() -> None:
    config = BatchingConfig(
        {"max_queue_delay_ms": 0.0, "preferred_size": 8, "max_queue_size": 50}, (1, 8, 32)
    )
    settings = resolve(config)
    assert settings.dynamic_sizes == (1, 8, 32)
    # explicit batch sizes are every method's job sizes, whatever its models run
    assert settings.policy((4,)) == BatchPolicy((1, 8, 32), 8, 0.0, 50)
    assert resolve(BatchingConfig(max_batch_size=16)).policy(None).sizes == (1, 2, 4, 8, 16)


def test_worker_max_batch_size_overrides_the_servable() -> None:
    settings = resolve(BatchingConfig({"preferred_size": 32}, batch_sizes=(1, 8, 32)), 4)
    assert settings.dynamic_sizes == (1, 2, 4)
    assert settings.policy(None) == BatchPolicy((1, 2, 4), 4, 2.0, 10000)
    assert settings.policy((2,)).sizes == (2,)
