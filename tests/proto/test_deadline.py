"""The one deadline rule: sources, precedence, default, refusals."""

from __future__ import annotations

import math

import pytest

from msq.proto.deadline import (
    DEFAULT_TIMEOUT_S,
    Deadline,
    DeadlineError,
    DeadlineSource,
    checked_timeout_s,
    resolve_deadline,
)


def test_no_timeout_given_means_the_system_default() -> None:
    deadline = resolve_deadline({DeadlineSource.GRPC_DEADLINE: None}, now=100.0)
    assert deadline == Deadline(
        100.0 + DEFAULT_TIMEOUT_S, DeadlineSource.DEFAULT, DEFAULT_TIMEOUT_S
    )


def test_a_single_source_sets_the_deadline() -> None:
    deadline = resolve_deadline({DeadlineSource.TIMEOUT_HEADER: 0.5}, now=10.0)
    assert deadline.at == 10.5
    assert deadline.source is DeadlineSource.TIMEOUT_HEADER
    assert deadline.describe() == "500 ms from the X-MSQ-Timeout-Ms header"


@pytest.mark.parametrize(
    ("grpc_s", "parameter_s", "winner"),
    [
        (2.0, 0.25, DeadlineSource.TIMEOUT_PARAMETER),
        (0.1, 3.0, DeadlineSource.GRPC_DEADLINE),
        (None, 3.0, DeadlineSource.TIMEOUT_PARAMETER),
    ],
)
def test_the_smallest_of_several_wins(
    grpc_s: float | None, parameter_s: float, winner: DeadlineSource
) -> None:
    given = {DeadlineSource.GRPC_DEADLINE: grpc_s, DeadlineSource.TIMEOUT_PARAMETER: parameter_s}
    deadline = resolve_deadline(given, now=0.0, default_s=1.0)
    assert deadline.source is winner
    assert deadline.at == min(s for s in (grpc_s, parameter_s) if s is not None)


def test_a_client_timeout_longer_than_the_default_is_kept() -> None:
    deadline = resolve_deadline({DeadlineSource.TIMEOUT_HEADER: 120.0}, now=0.0, default_s=60.0)
    assert deadline.at == 120.0


def test_remaining_time_travels_as_milliseconds_and_never_goes_negative() -> None:
    deadline = Deadline.after(2.0, DeadlineSource.REQUEST, now=5.0)
    assert deadline.timeout_ms(now=6.5) == pytest.approx(500.0)
    assert not deadline.expired(6.5)
    assert deadline.expired(7.0)
    assert deadline.timeout_ms(now=9.0) == 0.0
    assert deadline.remaining_s(9.0) == -2.0


@pytest.mark.parametrize(
    ("value", "scale", "seconds"),
    [(500, 1e-3, 0.5), ("250", 1e-3, 0.25), (b"1.5", 1.0, 1.5), (2_000_000, 1e-6, 2.0)],
)
def test_timeouts_are_scaled_to_seconds(value: object, scale: float, seconds: float) -> None:
    assert checked_timeout_s(value, scale, "x") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", [0, -1, 0.0, -0.5, "0", "abc", "", True, None, math.nan, math.inf, [1]]
)
def test_zero_negative_and_garbage_timeouts_are_refused_clearly(value: object) -> None:
    with pytest.raises(DeadlineError, match=r"^X-MSQ-Timeout-Ms must be a positive number, not "):
        checked_timeout_s(value, 1e-3, "X-MSQ-Timeout-Ms")
