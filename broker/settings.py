"""Broker settings: liveness, deadlines, re-dispatch, and per-servable batching overrides."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from msq.proto.batching import BatchingError, BatchPolicy, Settings, read_settings
from msq.proto.deadline import DEFAULT_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything the broker's scheduling core can be told.

    `overrides` maps a servable name (or "*" for all) to batching settings (by `BatchPolicy`
    field) laid over what its workers announce (from `register.batching` in
    servable_config.py); a servable's own entry wins over "*".
    """

    heartbeat_interval_s: float = 1.0
    heartbeat_liveness: int = 3
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    job_timeout_s: float = 120.0
    max_redispatch: int = 2
    overrides: dict[str, Settings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.heartbeat_interval_s <= 0 or self.heartbeat_liveness < 1:
            raise ValueError("heartbeat interval must be > 0 and liveness >= 1")
        if self.default_timeout_s <= 0 or self.job_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")
        if self.max_redispatch < 0:
            raise ValueError("max_redispatch must be >= 0")
        for servable, values in self.overrides.items():
            _checked(values, f"batching of {servable!r}")

    @property
    def worker_expiry_s(self) -> float:
        """How long a silent worker (or gateway link) is kept before it is considered lost."""
        return self.heartbeat_interval_s * self.heartbeat_liveness

    def policy_for(self, servable: str, announced: BatchPolicy) -> BatchPolicy:
        """The batching policy to use for a method of `servable` that announced `announced`."""
        for key in ("*", servable):
            values = self.overrides.get(key)
            if values:
                announced = announced.updated(values)
        return announced


def load_overrides(path: Path) -> dict[str, Settings]:
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
        overrides[servable] = _checked(values, f"{path}: [batching.{servable}]")
    return overrides


def _checked(values: Settings, where: str) -> Settings:
    try:
        return read_settings(values)
    except BatchingError as exc:
        raise BatchingError(f"{where}: {exc}") from None
