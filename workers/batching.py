"""The worker's side of batching: job sizes per method, and `register.batching`'s checks.

A servable may set its batching in its config with `register.batching(...)` (an msq
extension); the worker's `--max-batch-size` overrides the sizes. A model with a dynamic batch
dimension runs the allowed sizes (powers of two up to the maximum unless `batch_sizes` is
given); a model with a fixed batch size N runs N. The settings, their defaults and their
validation belong to `msq.proto.batching.BatchPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from msq.proto.batching import (
    SETTINGS,
    BatchingError,
    BatchPolicy,
    Settings,
    check_number,
    check_preferred,
    check_sizes,
    read_settings,
)

DEFAULT_MAX_BATCH_SIZE = 64

#: `register.batching`'s keywords for the job sizes; the others are `BatchPolicy` settings.
_SIZE_KEYWORDS = ("batch_sizes", "max_batch_size")


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """What `register.batching` was given, checked: `BatchPolicy` settings by field, and the
    job sizes (`batch_sizes`, or powers of two up to `max_batch_size`; None: the default)."""

    settings: Settings = field(default_factory=dict)
    batch_sizes: tuple[int, ...] | None = None
    max_batch_size: int | None = None


def read_config(keywords: Mapping[str, object]) -> BatchingConfig:
    """Check `register.batching`'s keywords (None: not given); `BatchingError` names the one
    that is wrong."""
    settings = read_settings(
        {name: value for name, value in keywords.items() if name not in _SIZE_KEYWORDS},
        by_keyword=True,
    )
    batch_sizes, max_batch_size = (keywords.get(name) for name in _SIZE_KEYWORDS)
    maximum = None
    if max_batch_size is not None:
        maximum = int(check_number(max_batch_size, "max_batch_size", int, 1))
    sizes = None if batch_sizes is None else check_sizes(batch_sizes, "batch_sizes")
    if sizes is not None and maximum is not None:
        raise BatchingError("give batch_sizes or max_batch_size, not both")
    preferred = settings.get("preferred_size")
    if preferred is not None:
        largest = sizes[-1] if sizes else maximum or DEFAULT_MAX_BATCH_SIZE
        check_preferred(preferred, largest, SETTINGS["preferred_size"].keyword)
    return BatchingConfig(settings, sizes, maximum)


def power_of_two_sizes(max_size: int) -> tuple[int, ...]:
    """1, 2, 4, ... below `max_size`, then `max_size`."""
    sizes = [1 << shift for shift in range(max_size.bit_length()) if 1 << shift < max_size]
    return (*sizes, max_size)


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """The batching a worker applies: sizes of dynamic-batch models and each method's policy.

    `dynamic_sizes` are the sizes a model with a dynamic batch dimension runs (and the job
    sizes of methods without a batched model); `method_sizes`, when set, are every method's
    job sizes whatever its models (a worker splits jobs into its models' sizes). `settings`
    are the servable's other batching settings.
    """

    dynamic_sizes: tuple[int, ...]
    method_sizes: tuple[int, ...] | None = None
    settings: Settings = field(default_factory=dict)

    def policy(self, model_sizes: tuple[int, ...] | None) -> BatchPolicy:
        """The policy of a method whose first batched model runs `model_sizes` (None: none)."""
        sizes = self.method_sizes or model_sizes or self.dynamic_sizes
        return BatchPolicy.for_sizes(sizes, self.settings)


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
    return BatchSettings(dynamic_sizes, method_sizes, config.settings)
