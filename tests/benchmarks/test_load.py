"""The load generators and latency summary (pure asyncio, no servers)."""

from __future__ import annotations

import asyncio

import pytest

from msq.benchmarks.load import CallError, LoadSpec, latency_summary, run_load


class CountingTarget:
    """Succeeds with `instances` per call, failing every `fail_every`-th call."""

    def __init__(self, instances: int = 1, fail_every: int = 0, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.in_flight = 0
        self.peak = 0
        self.instances = instances
        self.fail_every = fail_every
        self.delay_s = delay_s

    async def __call__(self) -> int:
        self.calls += 1
        number = self.calls
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            if self.fail_every and number % self.fail_every == 0:
                raise CallError("queue_full", "too much")
            return self.instances
        finally:
            self.in_flight -= 1


def test_closed_loop_stops_at_count_and_keeps_concurrency() -> None:
    target = CountingTarget(instances=3, fail_every=5, delay_s=0.001)
    spec = LoadSpec(concurrency=4, duration_s=60.0, count=40, warmup_s=0.0)
    result = asyncio.run(run_load(target, spec))
    assert result.requests == 40
    assert target.calls == 40
    assert target.peak == 4
    assert result.errors == {"queue_full": 8}
    assert result.succeeded == 32
    assert result.instances == 96
    assert result.mode == "closed"


def test_warmup_calls_are_not_counted() -> None:
    target = CountingTarget(delay_s=0.001)
    spec = LoadSpec(concurrency=2, duration_s=60.0, count=10, warmup_s=0.05)
    result = asyncio.run(run_load(target, spec))
    assert result.requests == 10
    assert target.calls > 10


def test_unexpected_exceptions_count_by_type() -> None:
    async def broken() -> int:
        raise ConnectionResetError("peer went away")

    result = asyncio.run(run_load(broken, LoadSpec(count=3, warmup_s=0.0)))
    assert result.errors == {"ConnectionResetError": 3}
    assert result.succeeded == 0
    assert result.latency_ms["p50"] == 0.0


def test_open_loop_issues_count_requests_and_reports_overload() -> None:
    target = CountingTarget(delay_s=0.05)
    # 2000 arrivals/s for 100 requests: far more than 2 in flight can absorb in 50 ms each.
    spec = LoadSpec(concurrency=2, duration_s=60.0, count=100, warmup_s=0.0, rate=2000.0)
    result = asyncio.run(run_load(target, spec))
    assert result.mode == "open"
    assert result.requests == 100
    assert result.errors["client_overload"] == 100 - target.calls
    assert target.peak == 2


def test_open_loop_rate_bounds_the_duration() -> None:
    target = CountingTarget()
    spec = LoadSpec(concurrency=64, duration_s=0.5, warmup_s=0.0, rate=200.0)
    result = asyncio.run(run_load(target, spec))
    # Poisson arrivals at 200/s for 0.5 s: 100 expected; 5 sigma either side is 50..150.
    assert 50 <= result.requests <= 150
    assert result.errors == {}


def test_latency_summary_percentiles() -> None:
    summary = latency_summary([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p90"] == pytest.approx(90.1)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == pytest.approx(100.0)
    assert summary["mean"] == pytest.approx(50.5)
