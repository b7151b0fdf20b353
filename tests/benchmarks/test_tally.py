"""`msq.benchmarks.tally`: classifying requests, counting them per fault window, the table."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from msq.benchmarks.tally import (
    Failed,
    Outcome,
    Window,
    classify,
    message_class,
    table,
    tally,
)

Y = [np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), np.zeros((2, 2), np.float32)]


def outcome(answer: object, answered_at: float = 1.0) -> Outcome:
    return classify("ms-grpc", 0.0, answered_at, answer, deadline_s=2.0, expected=Y)  # type: ignore[arg-type]


def test_right_answers_within_the_deadline_are_ok() -> None:
    assert outcome([y.copy() for y in Y]) == Outcome("ms-grpc", 0.0, 1.0, "ok")


def test_right_answers_after_the_deadline_are_late() -> None:
    assert outcome([y.copy() for y in Y], answered_at=2.5).status == "late"


def test_any_difference_is_wrong() -> None:
    swapped = [Y[1], Y[0]]
    reshaped = [Y[0].reshape(4), Y[1]]
    for answer in (swapped, reshaped, [Y[0]], [Y[0], None], [*Y, Y[0]]):
        assert outcome(answer).status == "wrong", answer
    assert outcome([Y[0], Y[1] + np.float32(1e-6)]).status == "wrong"


def test_a_failure_keeps_its_kind() -> None:
    assert outcome(Failed("grpc UNAVAILABLE: x"), answered_at=9.0) == Outcome(
        "ms-grpc", 0.0, 9.0, "failed", "grpc UNAVAILABLE: x"
    )


def test_message_class_masks_numbers_and_ids() -> None:
    assert message_class(" no answer from the broker at tcp://127.0.0.1:5555 within 6.0 s ") == (
        "no answer from the broker at tcp://N.N.N.N:N within N.N s"
    )
    assert message_class("request 0123abcd4567ef89 failed") == "request ID failed"
    assert len(message_class("x" * 500)) == 80


def test_outcomes_count_in_the_window_they_ended_in() -> None:
    windows = [Window("before faults", 0.0), Window("worker-kill", 10.0, "worker #1")]
    start = 1000.0
    outcomes = [
        Outcome("ms-grpc", start + 1, start + 2, "ok"),
        Outcome("v2-rest", start + 8, start + 11, "failed", "http 504: timeout"),  # in flight
        Outcome("v2-rest", start + 10.5, start + 11, "late"),
        Outcome("ms-grpc", start + 12, start + 12.1, "wrong"),
        Outcome("ms-grpc", start + 13, start + 13.1, "failed", "http 504: timeout"),
    ]
    totals = tally(windows, outcomes, start)
    before, kill = windows[0].as_dict(), windows[1].as_dict()
    assert before == {
        "name": "before faults",
        "start_s": 0.0,
        "target": "",
        "sent": 1,
        "ok": 1,
        "wrong": 0,
        "late": 0,
        "failed": 0,
        "failures": {},
        "by_path": {
            "ms-grpc": {"sent": 1, "ok": 1, "wrong": 0, "late": 0, "failed": 0, "failures": {}}
        },
    }
    assert (kill["sent"], kill["ok"], kill["wrong"], kill["late"], kill["failed"]) == (
        4,
        0,
        1,
        1,
        2,
    )
    assert kill["failures"] == {"http 504: timeout": 2}
    assert totals.as_dict() == {
        "sent": 5,
        "ok": 1,
        "wrong": 1,
        "late": 1,
        "failed": 2,
        "failures": {"http 504: timeout": 2},
    }


def test_the_table_shows_every_window_and_the_totals() -> None:
    windows = [Window("before faults", 0.0), Window("broker-kill", 12.5, "broker")]
    windows[1].add(Outcome("ms-rest", 12.0, 13.0, "failed", "http 504: timeout"))
    windows[1].add(Outcome("ms-rest", 12.0, 13.0, "ok"))
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(table("chaos", windows, windows[1].counts))
    lines = [line for line in buffer.getvalue().splitlines() if "│" in line]
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]
    assert cells == [
        ["before faults", "0.0", "", "0", "0", "0", "0", "0", ""],
        ["broker-kill", "12.5", "broker", "2", "1", "0", "0", "1", "http 504: timeout ×1"],
        ["total", "", "", "2", "1", "0", "0", "1", "http 504: timeout ×1"],
    ]
