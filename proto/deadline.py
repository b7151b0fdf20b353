"""Request deadlines: one value type, one precedence rule, one default for the whole system.

A deadline is made once, where a request enters msq (a gateway, or the broker for other clients
of the internal protocol), from whatever the client gave: a gRPC deadline, the V2 `timeout`
parameter, the `X-MSQ-Timeout-Ms` header. The smallest of those wins; when the client gave none,
`DEFAULT_TIMEOUT_S` applies. Between processes a deadline travels as the time left
(`Deadline.timeout_ms`), because monotonic clocks are not comparable across hosts; each receiver
turns it back into a `Deadline` on its own clock with `Deadline.after`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

#: The deadline of a request whose client gave none, everywhere in msq (seconds).
DEFAULT_TIMEOUT_S = 60.0


class DeadlineSource(enum.Enum):
    """Where a deadline came from (said in timeout messages)."""

    GRPC_DEADLINE = "the gRPC deadline"
    TIMEOUT_PARAMETER = "the V2 'timeout' parameter"
    TIMEOUT_HEADER = "the X-MSQ-Timeout-Ms header"
    REQUEST = "the request's timeout"
    JOB = "the job's time left"
    DEFAULT = "the server's default timeout"


class DeadlineError(ValueError):
    """A timeout given by a client is not a positive, finite number."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute point on this process's monotonic clock, and how it was set."""

    at: float
    source: DeadlineSource
    #: The time the client allowed, in seconds (for messages; `at` is what counts).
    budget_s: float

    @classmethod
    def after(cls, seconds: float, source: DeadlineSource, now: float) -> Deadline:
        """The deadline `seconds` after `now`."""
        return cls(now + seconds, source, seconds)

    def remaining_s(self, now: float) -> float:
        """Seconds left (negative once passed)."""
        return self.at - now

    def expired(self, now: float) -> bool:
        """Whether the deadline has passed."""
        return now >= self.at

    def timeout_ms(self, now: float) -> float:
        """The time left in milliseconds, as it travels to the next process (never negative)."""
        return max(0.0, (self.at - now) * 1000.0)

    def describe(self) -> str:
        """E.g. "500 ms from the X-MSQ-Timeout-Ms header"."""
        return f"{self.budget_s * 1000.0:g} ms from {self.source.value}"


def checked_timeout_s(value: object, scale_s: float, what: str) -> float:
    """A client's timeout in seconds: `value` (in units of `scale_s` seconds) must be a positive,
    finite number; booleans, strings of garbage, 0, negatives, NaN and infinity are refused with
    a `DeadlineError` naming `what`."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str | bytes):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not (number > 0 and math.isfinite(number)):
        raise DeadlineError(f"{what} must be a positive number, not {value!r}")
    return number * scale_s


def resolve_deadline(
    given: dict[DeadlineSource, float | None],
    now: float,
    default_s: float = DEFAULT_TIMEOUT_S,
) -> Deadline:
    """The deadline of a request: the smallest timeout the client gave (seconds, None: not
    given), else `default_s` from `now`."""
    offered = [(seconds, source) for source, seconds in given.items() if seconds is not None]
    if not offered:
        return Deadline.after(default_s, DeadlineSource.DEFAULT, now)
    seconds, source = min(offered, key=lambda item: item[0])
    return Deadline.after(seconds, source, now)
