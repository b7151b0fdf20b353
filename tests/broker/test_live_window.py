"""The one-minute window behind `msq status`: counts, expiry of old buckets, percentiles."""

from __future__ import annotations

import pytest

from msq.broker.stats import WINDOW_S, LiveWindow, bin_upper_ms, latency_bin
from msq.proto.messages import RouteWindow


def test_an_empty_window_has_no_percentiles() -> None:
    assert LiveWindow().figures(10.0, uptime_s=10.0) == RouteWindow(10.0, 0, 0, 0, None, None)


def test_counts_cover_the_last_minute_and_then_drop_out() -> None:
    window = LiveWindow()
    window.accepted(100.2, instances=3)
    window.accepted(130.0, instances=1)
    window.completed(130.5, [(130.0, 1)])
    at_150 = window.figures(150.0, uptime_s=1000.0)
    assert (at_150.seconds, at_150.requests, at_150.instances, at_150.completed) == (60.0, 2, 4, 1)
    # the bucket of 100.2 s covers [100, 101): it leaves the window at 160 s
    assert window.figures(159.99, uptime_s=1000.0).requests == 2
    assert window.figures(160.0, uptime_s=1000.0).requests == 1
    assert window.figures(190.6, uptime_s=1000.0) == RouteWindow(60.0, 0, 0, 0, None, None)


def test_a_reused_bucket_forgets_what_it_held_a_minute_earlier() -> None:
    window = LiveWindow()
    window.accepted(5.5, instances=7)
    window.accepted(5.5 + WINDOW_S, instances=2)
    figures = window.figures(5.5 + WINDOW_S, uptime_s=100.0)
    assert (figures.requests, figures.instances) == (1, 2)


def test_the_window_is_no_longer_than_the_broker_has_been_up() -> None:
    window = LiveWindow()
    window.accepted(3.0, instances=1)
    assert window.figures(4.0, uptime_s=4.0).seconds == 4.0


def test_equal_latencies_give_that_latency_exactly() -> None:
    window = LiveWindow()
    window.completed(10.0, [(9.995, 15), (9.995, 5)])
    figures = window.figures(10.0, uptime_s=10.0)
    assert figures.p50_ms == figures.p99_ms == pytest.approx(5.0)
    assert figures.completed == 20


def test_percentiles_are_within_one_bin_of_the_true_ones() -> None:
    window = LiveWindow()
    for ms in range(1, 101):  # 1 ms .. 100 ms, at different times within the minute
        window.completed(20.0 + ms / 10, [(20.0 + ms / 10 - ms / 1000, 1)])
    figures = window.figures(40.0, uptime_s=40.0)
    assert figures.p50_ms is not None and figures.p99_ms is not None
    assert 50.0 <= figures.p50_ms <= 50.0 * 2 ** (1 / 8)
    assert 99.0 <= figures.p99_ms <= 99.0 * 2 ** (1 / 8)


def test_one_slow_instance_shows_in_p99_not_in_p50() -> None:
    window = LiveWindow()
    window.completed(1.0, [(1.0 - 0.002, 99), (1.0 - 2.0, 1)])
    figures = window.figures(1.0, uptime_s=1.0)
    assert figures.p50_ms == pytest.approx(2.0, rel=0.1)
    assert figures.p99_ms == pytest.approx(2.0, rel=0.1)
    window.completed(1.0, [(1.0 - 2.0, 1)])  # now 2 of 101 are slow: the 99th percentile is one
    assert window.figures(1.0, uptime_s=1.0).p99_ms == pytest.approx(2000.0)


@pytest.mark.parametrize("ms", [0.0, 0.005, 0.01, 0.0101, 0.5, 1.0, 3.3, 999.0, 1e6])
def test_a_latency_lies_in_its_bin(ms: float) -> None:
    index = latency_bin(ms)
    assert ms <= bin_upper_ms(index) * (1 + 1e-12)
    assert index == 0 or bin_upper_ms(index - 1) < ms
