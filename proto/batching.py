"""The batching policy: the settings of a method's queue, their one validation, the decisions.

`BatchPolicy` declares every batching setting once. Its scalar settings are fields made with
`_setting` (default, lower bound, the keyword users write, a description); from that one
declaration follow their validation and error messages (`read_settings`: `register.batching`,
the broker's flags and `[batching.NAME]` tables), the broker's overrides (`BatchPolicy.updated`),
the worker's defaults (`BatchPolicy.for_sizes`) and the broker's flags (`msq.broker.cli`). A
`BatchPolicy` that exists is valid: construction checks it (`BatchingError` otherwise), so a
worker's announced policy is checked when it is decoded.

The decisions are pure functions of the policy and plain queue facts, without sockets or clock:
`admit` (may a request's instances join the queue), `job_size` (how many instances to
dispatch now) and `window_closes_at` (when to look again); `msq.broker.routes.Route` asks them.

Adding a batching setting touches three files: this module (the field, and its use in
the decisions), `workers/register.py` (its keyword of `register.batching`) and the
README's Batching table.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

Settings: TypeAlias = Mapping[str, int | float]
"""Scalar batching settings by `BatchPolicy` field name."""


class BatchingError(ValueError):
    """An invalid batching setting; the message names it as the user wrote it."""


def _setting(default: float, *, minimum: int, doc: str, keyword: str = "") -> Any:
    """A scalar field of `BatchPolicy`, of its default's type (int or float).

    `keyword` names it in `register.batching` and the broker's flags (default: the field name;
    the broker's `[batching.NAME]` tables use the field name).
    """
    return field(default=default, metadata={"minimum": minimum, "doc": doc, "keyword": keyword})


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How the broker forms jobs for one method.

    `sizes` are the job sizes the worker runs (ascending; a job of n instances is padded to
    the smallest size >= n; the last is the maximum). The broker waits at most
    `max_queue_delay_ms` for a job to fill up to `preferred_size` (at most the maximum);
    `max_queue_size` bounds the queued instances of the method.
    """

    sizes: tuple[int, ...] = (1,)
    preferred_size: int = _setting(
        1, minimum=1, keyword="preferred_batch_size",
        doc="a job this large is dispatched without waiting",
    )  # fmt: skip
    max_queue_delay_ms: float = _setting(
        2.0, minimum=0, doc="the longest an instance waits for its job to fill up"
    )
    max_queue_size: int = _setting(
        10000, minimum=1, doc="queued instances per method before requests are refused"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", check_sizes(self.sizes))
        for setting in SETTINGS.values():
            value = setting.check(getattr(self, setting.name))
            object.__setattr__(self, setting.name, value)
        check_preferred(self.preferred_size, self.max_size)

    @classmethod
    def for_sizes(cls, sizes: tuple[int, ...], settings: Settings) -> BatchPolicy:
        """The policy of a method running `sizes`, with `settings` over the defaults; the
        preferred size defaults to the largest size."""
        return cls(sizes, preferred_size=sizes[-1]).updated(settings)

    @property
    def max_size(self) -> int:
        """The largest job the worker accepts."""
        return self.sizes[-1]

    def updated(self, settings: Settings) -> BatchPolicy:
        """This policy with `settings` in place; the preferred size is capped at the largest."""
        preferred = min(settings.get("preferred_size", self.preferred_size), self.max_size)
        changes: dict[str, Any] = {**settings, "preferred_size": preferred}
        return dataclasses.replace(self, **changes)

    def admit(self, queued: int, count: int) -> Admission:
        """Whether `count` new instances may join a queue that holds `queued` live ones."""
        if count > self.max_queue_size:
            return Admission.TOO_LARGE
        if queued + count > self.max_queue_size:
            return Admission.QUEUE_FULL
        return Admission.ACCEPT

    def job_size(
        self, *, live: int, in_flight: int, oldest_at: float, oldest_eager: bool, now: float
    ) -> int:
        """How many of a non-empty queue's `live` instances to dispatch now, while `in_flight`
        jobs run: 0 while a partial batch may still fill up.

        `oldest_at` is when the oldest instance arrived, `oldest_eager` whether its method was
        idle (nothing queued or running) then. A full batch (the preferred size) goes at once;
        so does a request that found its method idle (a lone request has nothing to wait
        for). Otherwise a partial batch waits until `window_closes_at(oldest_at)`, so that
        bursts coalesce into full batches.
        """
        count = min(live, self.max_size)
        if (
            count >= self.preferred_size
            or (oldest_eager and in_flight == 0)
            or now >= self.window_closes_at(oldest_at)
        ):
            return count
        return 0

    def window_closes_at(self, oldest_at: float) -> float:
        """When a partial batch whose oldest instance arrived at `oldest_at` goes anyway: when
        its queue must be looked at again."""
        return oldest_at + self.max_queue_delay_ms / 1000.0


class Admission(enum.Enum):
    """`BatchPolicy.admit`'s answer."""

    ACCEPT = "accept"
    #: No room now; the request would fit an emptier queue (retry later).
    QUEUE_FULL = "queue full"
    #: More instances than the queue can ever hold (split the request).
    TOO_LARGE = "too large"


@dataclass(frozen=True, slots=True)
class Setting:
    """A scalar batching setting, as declared on `BatchPolicy`."""

    name: str
    keyword: str
    kind: type[int] | type[float]
    minimum: int
    doc: str

    def check(self, value: object, name: str = "") -> int | float:
        """`value` as this setting's type; `BatchingError` naming it `name` (default: the
        field name) when it is not one >= the minimum."""
        return check_number(value, name or self.name, self.kind, self.minimum)


#: The scalar settings of `BatchPolicy`, by field name.
SETTINGS: Mapping[str, Setting] = {
    spec.name: Setting(
        spec.name,
        spec.metadata["keyword"] or spec.name,
        int if isinstance(spec.default, int) else float,
        spec.metadata["minimum"],
        spec.metadata["doc"],
    )
    for spec in dataclasses.fields(BatchPolicy)
    if "minimum" in spec.metadata
}


def read_settings(
    values: Mapping[str, object], *, by_keyword: bool = False
) -> dict[str, int | float]:
    """Check scalar batching settings and return them by field name; None means not given.

    `values` are named by field (the broker's `[batching.NAME]` keys) or, `by_keyword`, by
    keyword (`register.batching`, the broker's flags); errors use the names given.
    """
    known = {(s.keyword if by_keyword else s.name): s for s in SETTINGS.values()}
    checked: dict[str, int | float] = {}
    for name, value in values.items():
        setting = known.get(name)
        if setting is None:
            raise BatchingError(f"unknown batching setting {name!r} (known: {', '.join(known)})")
        if value is not None:
            checked[setting.name] = setting.check(value, name)
    return checked


def check_number(
    value: object, name: str, kind: type[int] | type[float], minimum: int
) -> int | float:
    """`value` as `kind` if it is one (an int for int; an int or finite float for float) and
    >= `minimum`; else `BatchingError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind is int and not isinstance(value, int))
        or not math.isfinite(value)
        or value < minimum
    ):
        noun = "a number" if kind is float else "an int"
        raise BatchingError(f"{name} must be {noun} >= {minimum}, not {value!r}")
    return kind(value)


def check_sizes(sizes: object, name: str = "sizes") -> tuple[int, ...]:
    """Job sizes as a tuple if they are ascending distinct ints >= 1 (at least one)."""
    shown: object = repr(sizes)
    if isinstance(sizes, Sequence) and not isinstance(sizes, (str, bytes)):
        shown = listed = list(sizes)
        if (
            listed
            and all(isinstance(size, int) and not isinstance(size, bool) for size in listed)
            and listed[0] >= 1
            and listed == sorted(set(listed))
        ):
            return tuple(listed)
    raise BatchingError(f"{name} must be ascending distinct ints >= 1, not {shown}")


def check_preferred(preferred: float, largest: int, name: str = "preferred_size") -> None:
    """A preferred size above the largest batch size is refused."""
    if preferred > largest:
        raise BatchingError(f"{name} {preferred} exceeds the largest batch size {largest}")
