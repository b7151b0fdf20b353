"""Batching settings of a servable: job sizes, queueing delay and queue bound per method.

A servable may set them in its config with `register.batching(...)` (an msq extension); the
worker's `--max-batch-size` overrides the sizes. A model with a dynamic batch dimension runs
the allowed sizes (powers of two up to the maximum unless `batch_sizes` is given); a model
with a fixed batch size N runs N.
"""

from __future__ import annotations

from dataclasses import dataclass

from msq.proto.messages import BatchPolicy

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_QUEUE_DELAY_MS = 2.0
DEFAULT_MAX_QUEUE_SIZE = 10000


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """What `register.batching` was given (None: the default)."""

    max_queue_delay_ms: float | None = None
    preferred_batch_size: int | None = None
    max_queue_size: int | None = None
    batch_sizes: tuple[int, ...] | None = None
    max_batch_size: int | None = None


def power_of_two_sizes(max_size: int) -> tuple[int, ...]:
    """1, 2, 4, ... below `max_size`, then `max_size`."""
    sizes = [1 << shift for shift in range(max_size.bit_length()) if 1 << shift < max_size]
    return (*sizes, max_size)


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """The batching a worker applies: sizes of dynamic-batch models and each method's policy.

    `dynamic_sizes` are the sizes a model with a dynamic batch dimension runs (and the job
    sizes of methods without a batched model); `method_sizes`, when set, are every method's
    job sizes whatever its models (a worker splits jobs into its models' sizes).
    """

    dynamic_sizes: tuple[int, ...]
    method_sizes: tuple[int, ...] | None = None
    preferred_size: int | None = None
    max_queue_delay_ms: float = DEFAULT_MAX_QUEUE_DELAY_MS
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE

    def policy(self, model_sizes: tuple[int, ...] | None) -> BatchPolicy:
        """The policy of a method whose first batched model runs `model_sizes` (None: none)."""
        sizes = self.method_sizes or model_sizes or self.dynamic_sizes
        preferred = min(self.preferred_size or sizes[-1], sizes[-1])
        return BatchPolicy(sizes, preferred, self.max_queue_delay_ms, self.max_queue_size)


def resolve(config: BatchingConfig | None, max_batch_size: int | None = None) -> BatchSettings:
    """Combine a servable's `register.batching` settings with the worker's `--max-batch-size`."""
    config = config or BatchingConfig()
    method_sizes = None if max_batch_size else config.batch_sizes
    if max_batch_size:
        dynamic_sizes = power_of_two_sizes(max_batch_size)
    elif config.batch_sizes:
        dynamic_sizes = config.batch_sizes
    else:
        dynamic_sizes = power_of_two_sizes(config.max_batch_size or DEFAULT_MAX_BATCH_SIZE)
    return BatchSettings(
        dynamic_sizes=dynamic_sizes,
        method_sizes=method_sizes,
        preferred_size=config.preferred_batch_size,
        max_queue_delay_ms=(
            DEFAULT_MAX_QUEUE_DELAY_MS
            if config.max_queue_delay_ms is None
            else config.max_queue_delay_ms
        ),
        max_queue_size=config.max_queue_size or DEFAULT_MAX_QUEUE_SIZE,
    )
