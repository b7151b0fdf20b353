"""Broker settings: liveness, deadlines, re-dispatch, and per-servable batching overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msq.proto.deadline import DEFAULT_TIMEOUT_S
from msq.proto.messages import BatchPolicy


@dataclass(frozen=True, slots=True)
class BatchingOverride:
    """Batching settings given on the broker's command line or config file; None keeps the
    value the worker announced (from `register.batching` in servable_config.py)."""

    max_queue_delay_ms: float | None = None
    preferred_size: int | None = None
    max_queue_size: int | None = None

    def __post_init__(self) -> None:
        if self.max_queue_delay_ms is not None and self.max_queue_delay_ms < 0:
            raise ValueError("max_queue_delay_ms must be >= 0")
        if self.preferred_size is not None and self.preferred_size < 1:
            raise ValueError("preferred batch size must be >= 1")
        if self.max_queue_size is not None and self.max_queue_size < 1:
            raise ValueError("max_queue_size must be >= 1")

    def apply(self, policy: BatchPolicy) -> BatchPolicy:
        """The announced policy with this override's values in place."""
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("max_queue_delay_ms", self.max_queue_delay_ms),
                ("preferred_size", self.preferred_size),
                ("max_queue_size", self.max_queue_size),
            )
            if value is not None
        }
        policy = dataclasses.replace(policy, **changes)
        return dataclasses.replace(
            policy, preferred_size=min(policy.preferred_size, policy.max_size)
        )


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything the broker's scheduling core can be told.

    `overrides` maps a servable name (or "*" for all) to its batching override; a servable's
    own entry wins over "*".
    """

    heartbeat_interval_s: float = 1.0
    heartbeat_liveness: int = 3
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    job_timeout_s: float = 120.0
    max_redispatch: int = 2
    overrides: dict[str, BatchingOverride] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.heartbeat_interval_s <= 0 or self.heartbeat_liveness < 1:
            raise ValueError("heartbeat interval must be > 0 and liveness >= 1")
        if self.default_timeout_s <= 0 or self.job_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")
        if self.max_redispatch < 0:
            raise ValueError("max_redispatch must be >= 0")

    @property
    def worker_expiry_s(self) -> float:
        """How long a silent worker is kept before it is considered lost."""
        return self.heartbeat_interval_s * self.heartbeat_liveness

    def policy_for(self, servable: str, announced: BatchPolicy) -> BatchPolicy:
        """The batching policy to use for a method of `servable` that announced `announced`."""
        for key in ("*", servable):
            override = self.overrides.get(key)
            if override is not None:
                announced = override.apply(announced)
        return announced


def load_overrides(path: Path) -> dict[str, BatchingOverride]:
    """Read per-servable batching overrides from a TOML file.

    ```toml
    [batching."*"]
    max_queue_delay_ms = 2.0
    [batching.digits]
    preferred_size = 32
    max_queue_size = 5000
    ```
    """
    with path.open("rb") as file:
        document = tomllib.load(file)
    table = document.get("batching", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [batching] must be a table")
    overrides = {}
    for servable, values in table.items():
        if not isinstance(values, dict):
            raise ValueError(f"{path}: [batching.{servable}] must be a table")
        try:
            overrides[servable] = BatchingOverride(**values)
        except TypeError as exc:
            raise ValueError(f"{path}: [batching.{servable}]: {exc}") from None
    return overrides
