"""The REST gateway's deadline rule through real processes: the `X-MSQ-Timeout-Ms` header and
the V2 `timeout` parameter each alone, the smaller of both, the gateway's default, and bad
timeouts refused with 400 on both route families.

`slow` naps for the seconds it is given; a request whose deadline is shorter than its nap is
answered "timed out" well before the nap ends.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.gateways.rest_stack import RestStack, call, rest_gateway
from tests.processes import start_all, stop_all

HEADER = "X-MSQ-Timeout-Ms"
#: The default deadline of the extra gateway started here.
SHORT_DEFAULT_S = 0.3


def v2_nap(seconds: float, timeout_us: object = None) -> bytes:
    """A V2 infer body asking `slow` to nap, with a `timeout` parameter unless None."""
    document: dict[str, Any] = {
        "inputs": [{"name": "seconds", "datatype": "FP64", "shape": [1], "data": [seconds]}]
    }
    if timeout_us is not None:
        document["parameters"] = {"timeout": timeout_us}
    return json.dumps(document).encode()


def ms_nap(seconds: float) -> bytes:
    return json.dumps({"instances": {"seconds": seconds}}).encode()


def timed(port: int, path: str, body: bytes, **headers: str) -> tuple[int, Any, float]:
    """POST `body`: the status, the JSON answer and the seconds it took."""
    started = time.monotonic()
    status, _, data = call(
        http.client.HTTPConnection("127.0.0.1", port, timeout=30), "POST", path, body, headers
    )
    return status, json.loads(data), time.monotonic() - started


@pytest.fixture(scope="module")
def short_default(rest_stack: RestStack) -> Iterator[int]:
    """A gateway (real status codes) whose default deadline is `SHORT_DEFAULT_S`; its port."""
    proc, port = rest_gateway(
        rest_stack.frontend,
        "--workers", "1", "--http-status-codes", "--timeout", str(SHORT_DEFAULT_S),
        name="rest-short-default",
    )  # fmt: skip
    procs = start_all([proc])
    yield port
    stop_all(procs)


@pytest.mark.parametrize(
    ("timeout_us", "headers"),
    [
        (None, {HEADER: "200"}),  # the header alone
        (200_000, {}),  # the parameter alone
        (30_000_000, {HEADER: "200"}),  # both: the header is smaller
        (200_000, {HEADER: "30000"}),  # both: the parameter is smaller
    ],
)
def test_v2_the_smallest_timeout_given_wins(
    rest_stack: RestStack, timeout_us: int | None, headers: dict[str, str]
) -> None:
    status, answer, took = timed(
        rest_stack.plain_port, "/v2/models/slow/infer", v2_nap(1.0, timeout_us), **headers
    )
    assert (status, list(answer)) == (504, ["error"])
    assert answer["error"].startswith("request timed out")
    assert took < 0.9


def test_without_a_timeout_the_gateways_default_applies(short_default: int) -> None:
    status, answer, took = timed(short_default, "/v2/models/slow/infer", v2_nap(1.0))
    assert (status, took < 0.9) == (504, True), answer
    status, answer, took = timed(short_default, "/model/slow:nap", ms_nap(1.0))
    assert (status, took < 0.9) == (504, True), answer
    assert answer["error_msg"].startswith("request timed out")


def test_a_clients_timeout_beats_a_shorter_default(short_default: int) -> None:
    status, answer, _ = timed(short_default, "/model/slow:nap", ms_nap(0.5), **{HEADER: "10000"})
    assert (status, answer) == (200, {"instances": [{"slept": 0.5}]})
    body = v2_nap(0.5, 10_000_000)
    status, answer, _ = timed(short_default, "/v2/models/slow/infer", body)
    assert status == 200, answer
    assert answer["outputs"][0]["data"] == [0.5]


@pytest.mark.parametrize(
    ("timeout_us", "header", "message"),
    [
        (0, None, "parameter 'timeout' (microseconds) must be a positive number, not 0"),
        (-5, None, "parameter 'timeout' (microseconds) must be a positive number, not -5"),
        (1.5, None, "parameter 'timeout' (microseconds) must be a positive integer, not 1.5"),
        ("soon", None, "parameter 'timeout' (microseconds) must be a positive integer, not 'soon'"),
        (None, "0", "X-MSQ-Timeout-Ms must be a positive number, not '0'"),
        (None, "-1", "X-MSQ-Timeout-Ms must be a positive number, not '-1'"),
        (None, "soon", "X-MSQ-Timeout-Ms must be a positive number, not 'soon'"),
        (1_000_000, "0", "X-MSQ-Timeout-Ms must be a positive number, not '0'"),
    ],
)
def test_v2_bad_timeouts_are_400(
    rest_stack: RestStack, timeout_us: object, header: str | None, message: str
) -> None:
    headers = {} if header is None else {HEADER: header}
    status, answer, _ = timed(
        rest_stack.plain_port, "/v2/models/slow/infer", v2_nap(0.0, timeout_us), **headers
    )
    assert (status, answer) == (400, {"error": message})


@pytest.mark.parametrize("header", ["0", "-1", "soon", "inf"])
def test_ms_bad_timeout_headers_are_400(short_default: int, header: str) -> None:
    status, answer, _ = timed(short_default, "/model/slow:nap", ms_nap(0.0), **{HEADER: header})
    message = f"X-MSQ-Timeout-Ms must be a positive number, not {header!r}"
    assert (status, answer) == (400, {"error_msg": message})
