"""Unit tests of the gateways' one deadline rule: each source alone, the smallest of several,
the default, and bad timeouts refused the same way on every path."""

from __future__ import annotations

import pytest

from msq.gateways.core.deadline import request_deadline
from msq.gateways.core.errors import GatewayError
from msq.proto.deadline import Deadline, DeadlineSource
from msq.proto.errors import ErrorKind

NOW = 100.0


def test_without_a_client_timeout_the_default_applies() -> None:
    assert request_deadline(5.0, now=NOW) == Deadline(105.0, DeadlineSource.DEFAULT, 5.0)
    assert request_deadline(now=NOW).budget_s == 60.0  # DEFAULT_TIMEOUT_S


@pytest.mark.parametrize(
    ("given", "source", "seconds"),
    [
        ({"grpc_remaining_s": 2.0}, DeadlineSource.GRPC_DEADLINE, 2.0),
        ({"timeout_parameter": 1_500_000}, DeadlineSource.TIMEOUT_PARAMETER, 1.5),
        ({"timeout_header": "250"}, DeadlineSource.TIMEOUT_HEADER, 0.25),
        ({"timeout_header": "0.5"}, DeadlineSource.TIMEOUT_HEADER, 0.0005),
        # a client's timeout wins over the default even when it is longer
        ({"timeout_header": "600000"}, DeadlineSource.TIMEOUT_HEADER, 600.0),
    ],
)
def test_each_source_alone(
    given: dict[str, object], source: DeadlineSource, seconds: float
) -> None:
    deadline = request_deadline(5.0, now=NOW, **given)  # type: ignore[arg-type]
    assert (deadline.source, deadline.budget_s) == (source, pytest.approx(seconds))
    assert deadline.at == pytest.approx(NOW + seconds)


@pytest.mark.parametrize(
    ("given", "source"),
    [
        ({"grpc_remaining_s": 2.0, "timeout_parameter": 800_000}, "TIMEOUT_PARAMETER"),
        ({"grpc_remaining_s": 0.5, "timeout_parameter": 3_000_000}, "GRPC_DEADLINE"),
        ({"timeout_header": "200", "timeout_parameter": 30_000_000}, "TIMEOUT_HEADER"),
        ({"timeout_header": "30000", "timeout_parameter": 200_000}, "TIMEOUT_PARAMETER"),
    ],
)
def test_the_smallest_timeout_wins(given: dict[str, object], source: str) -> None:
    deadline = request_deadline(60.0, now=NOW, **given)  # type: ignore[arg-type]
    assert deadline.source is DeadlineSource[source]
    assert deadline.budget_s < 1.0


def test_grpcs_infinite_remaining_time_is_no_deadline() -> None:
    deadline = request_deadline(5.0, grpc_remaining_s=1e300, now=NOW)
    assert deadline.source is DeadlineSource.DEFAULT


def test_a_passed_grpc_deadline_is_expired_not_invalid() -> None:
    deadline = request_deadline(5.0, grpc_remaining_s=-0.1, now=NOW)
    assert deadline.source is DeadlineSource.GRPC_DEADLINE
    assert deadline.expired(NOW)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"timeout_parameter": 0}, "parameter 'timeout' (microseconds) must be a positive"),
        ({"timeout_parameter": -5}, "parameter 'timeout' (microseconds) must be a positive"),
        ({"timeout_parameter": 1.5}, "must be a positive integer, not 1.5"),
        ({"timeout_parameter": "1000"}, "must be a positive integer, not '1000'"),
        ({"timeout_parameter": True}, "must be a positive integer, not True"),
        ({"timeout_header": "0"}, "X-MSQ-Timeout-Ms must be a positive number, not '0'"),
        ({"timeout_header": "-1"}, "X-MSQ-Timeout-Ms must be a positive number, not '-1'"),
        ({"timeout_header": "soon"}, "X-MSQ-Timeout-Ms must be a positive number, not 'soon'"),
        ({"timeout_header": "nan"}, "X-MSQ-Timeout-Ms must be a positive number, not 'nan'"),
        ({"timeout_header": "inf"}, "X-MSQ-Timeout-Ms must be a positive number, not 'inf'"),
        ({"timeout_header": ""}, "X-MSQ-Timeout-Ms must be a positive number, not ''"),
        # one bad timeout fails the request even beside a good one
        ({"timeout_header": "100", "timeout_parameter": 0}, "parameter 'timeout'"),
    ],
)
def test_bad_timeouts_are_invalid_input(given: dict[str, object], message: str) -> None:
    with pytest.raises(GatewayError) as info:
        request_deadline(5.0, now=NOW, **given)  # type: ignore[arg-type]
    assert info.value.kind is ErrorKind.INVALID_INPUT
    assert message in info.value.message
    assert (info.value.status.http_status, info.value.status.grpc_code.name) == (
        400,
        "INVALID_ARGUMENT",
    )
