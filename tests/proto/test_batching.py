"""The batching policy: its one validation, the override merge, admission and the job decision."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msq.proto.batching import (
    SETTINGS,
    Admission,
    BatchingError,
    BatchPolicy,
    read_settings,
)

POLICY = BatchPolicy((1, 2, 4, 8), preferred_size=4, max_queue_delay_ms=5.0, max_queue_size=10)


def test_settings_are_derived_from_the_policy_fields() -> None:
    assert {name: (s.keyword, s.kind, s.minimum) for name, s in SETTINGS.items()} == {
        "preferred_size": ("preferred_batch_size", int, 1),
        "max_queue_delay_ms": ("max_queue_delay_ms", float, 0),
        "max_queue_size": ("max_queue_size", int, 1),
    }
    assert BatchPolicy() == BatchPolicy((1,), 1, 2.0, 10000)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"sizes": (4, 2)}, "sizes must be ascending distinct ints >= 1, not [4, 2]"),
        ({"sizes": (0, 1)}, "sizes must be ascending distinct ints >= 1, not [0, 1]"),
        ({"sizes": (1, 1)}, "sizes must be ascending distinct ints >= 1, not [1, 1]"),
        ({"sizes": ()}, "sizes must be ascending distinct ints >= 1, not []"),
        ({"sizes": (1, True)}, "sizes must be ascending distinct ints >= 1, not [1, True]"),
        ({"sizes": 4}, "sizes must be ascending distinct ints >= 1, not 4"),
        ({"preferred_size": 0}, "preferred_size must be an int >= 1, not 0"),
        ({"preferred_size": 2}, "preferred_size 2 exceeds the largest batch size 1"),
        ({"max_queue_delay_ms": -0.5}, "max_queue_delay_ms must be a number >= 0, not -0.5"),
        ({"max_queue_delay_ms": float("inf")}, "max_queue_delay_ms must be a number >= 0, not inf"),
        ({"max_queue_delay_ms": "1"}, "max_queue_delay_ms must be a number >= 0, not '1'"),
        ({"max_queue_size": 1.0}, "max_queue_size must be an int >= 1, not 1.0"),
    ],
)
def test_an_invalid_policy_cannot_be_made(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(BatchingError, match=f"^{re.escape(message)}$"):
        BatchPolicy(**arguments)  # type: ignore[arg-type]


def test_construction_normalizes_what_a_decoder_gives() -> None:
    policy = BatchPolicy([1, 2], 2, 3, 7)  # type: ignore[arg-type]
    assert policy.sizes == (1, 2)
    assert type(policy.max_queue_delay_ms) is float


def test_read_settings_by_field_or_keyword_names_errors_as_given() -> None:
    assert read_settings({"preferred_size": 3, "max_queue_delay_ms": 1}) == {
        "preferred_size": 3,
        "max_queue_delay_ms": 1.0,
    }
    by_keyword = {"preferred_batch_size": 3, "max_queue_size": None}
    assert read_settings(by_keyword, by_keyword=True) == {"preferred_size": 3}
    with pytest.raises(BatchingError, match=r"^preferred_batch_size must be an int >= 1, not 0$"):
        read_settings({"preferred_batch_size": 0}, by_keyword=True)
    with pytest.raises(
        BatchingError,
        match=re.escape(
            "unknown batching setting 'preferred_size' "
            "(known: preferred_batch_size, max_queue_delay_ms, max_queue_size)"
        ),
    ):
        read_settings({"preferred_size": 3}, by_keyword=True)


def test_updated_lays_settings_over_the_policy_and_caps_the_preferred_size() -> None:
    assert POLICY.updated({"max_queue_size": 3}) == BatchPolicy((1, 2, 4, 8), 4, 5.0, 3)
    assert POLICY.updated({"preferred_size": 64}).preferred_size == 8
    assert POLICY.updated({}) == POLICY
    with pytest.raises(BatchingError, match="max_queue_size must be an int >= 1, not 0"):
        POLICY.updated({"max_queue_size": 0})


def test_for_sizes_prefers_the_largest_size_by_default() -> None:
    assert BatchPolicy.for_sizes((1, 2, 4), {}) == BatchPolicy((1, 2, 4), 4, 2.0, 10000)
    assert BatchPolicy.for_sizes((4,), {"preferred_size": 8}).preferred_size == 4
    assert BatchPolicy.for_sizes((1, 8), {"preferred_size": 2}).preferred_size == 2


@pytest.mark.parametrize(
    ("queued", "count", "answer"),
    [
        (0, 10, Admission.ACCEPT),
        (9, 1, Admission.ACCEPT),
        (9, 2, Admission.QUEUE_FULL),
        (1, 10, Admission.QUEUE_FULL),
        (0, 11, Admission.TOO_LARGE),
        (5, 100000, Admission.TOO_LARGE),
        (10, 0, Admission.ACCEPT),
    ],
)
def test_admission(queued: int, count: int, answer: Admission) -> None:
    assert POLICY.admit(queued, count) is answer


def job_size(live: int, in_flight: int = 1, eager: bool = False, now: float = 1.0) -> int:
    return POLICY.job_size(
        live=live, in_flight=in_flight, oldest_at=1.0, oldest_eager=eager, now=now
    )


def test_job_size() -> None:
    # a partial batch waits for the window (5 ms after the oldest arrived) while a job runs
    assert POLICY.window_closes_at(1.0) == 1.005
    assert job_size(3) == 0
    assert job_size(3, now=1.004) == 0
    assert job_size(3, now=1.005) == 3
    # the preferred size goes at once, never more than the largest size
    assert job_size(4) == 4
    assert job_size(20) == 8
    # a request that found its method idle goes at once, unless a job now runs
    assert job_size(1, in_flight=0, eager=True) == 1
    assert job_size(1, in_flight=1, eager=True) == 0
    assert job_size(1, in_flight=0, eager=False) == 0


@given(
    live=st.integers(1, 50),
    in_flight=st.integers(0, 4),
    eager=st.booleans(),
    waited_ms=st.floats(0, 20),
)
def test_a_job_is_never_too_large_and_waits_at_most_the_window(
    live: int, in_flight: int, eager: bool, waited_ms: float
) -> None:
    now = 1.0 + waited_ms / 1000.0
    size = job_size(live, in_flight, eager, now)
    assert size in (0, min(live, POLICY.max_size))
    if now >= POLICY.window_closes_at(1.0) or live >= POLICY.preferred_size:
        assert size == min(live, POLICY.max_size)
