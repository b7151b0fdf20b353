"""Counting the chaos and soak tools' requests: each is ok, wrong, late or failed (by kind).

- `ok`: every instance's answer equals the known one, within the request's deadline;
- `wrong`: an answer whose values differ from the known ones (or miss an instance), whenever;
- `late`: right answers that came after the deadline;
- `failed`: an error instead of answers, counted by kind: the gRPC status, MindSpore Serving
  error code or HTTP status, and the message's class (`message_class`: numbers and ids
  masked, so that one cause is one kind).

A request counts in the window in which it ended (answered, failed or given up): "before
faults", then one window per fault until the next one starts; so a request in flight when a
fault hits counts for that fault. `table` shows the windows and their totals with rich.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.table import Table

STATUSES = ("ok", "wrong", "late", "failed")
#: Failure kinds a table row shows (the JSON has every kind).
SHOWN_KINDS = 3
_IDS = re.compile(r"\b[0-9a-f]{8,}\b|\b[0-9a-f-]{36}\b")
_NUMBERS = re.compile(r"\d+")
_MESSAGE_CLASS_CHARS = 80


@dataclass(frozen=True, slots=True)
class Failed:
    """A request answered by an error (or not answered): its kind."""

    kind: str


#: What a client read from a reply: each instance's output (None: missing), or a failure.
Answer = list[np.ndarray | None] | Failed


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request: its path, when it was sent and answered (monotonic s), how it ended."""

    path: str
    sent_at: float
    answered_at: float
    status: str  # one of STATUSES
    kind: str = ""  # a failure's kind


def message_class(message: str) -> str:
    """An error message with ids and numbers masked, cut at 80 characters."""
    masked = _NUMBERS.sub("N", _IDS.sub("ID", message.strip()))
    return masked[:_MESSAGE_CLASS_CHARS]


def classify(
    path: str,
    sent_at: float,
    answered_at: float,
    answer: Answer,
    *,
    deadline_s: float,
    expected: Sequence[np.ndarray],
) -> Outcome:
    """The outcome of a request whose known answers are `expected`."""
    if isinstance(answer, Failed):
        return Outcome(path, sent_at, answered_at, "failed", answer.kind)
    right = len(answer) == len(expected) and all(
        got is not None and got.shape == want.shape and np.array_equal(got, want)
        for got, want in zip(answer, expected, strict=False)
    )
    if not right:
        return Outcome(path, sent_at, answered_at, "wrong")
    late = answered_at - sent_at > deadline_s
    return Outcome(path, sent_at, answered_at, "late" if late else "ok")


@dataclass(slots=True)
class Counts:
    """Requests by status, and failures by kind."""

    sent: int = 0
    ok: int = 0
    wrong: int = 0
    late: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.sent += 1
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        if outcome.status == "failed":
            self.failures[outcome.kind] += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            **{status: getattr(self, status) for status in STATUSES},
            "failures": dict(self.failures.most_common()),
        }


@dataclass(slots=True)
class Window:
    """The requests that ended from `start_s` (seconds into the run) until the next window."""

    name: str
    start_s: float
    target: str = ""  # the process a fault hit
    counts: Counts = field(default_factory=Counts)
    by_path: dict[str, Counts] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.counts.add(outcome)
        self.by_path.setdefault(outcome.path, Counts()).add(outcome)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "start_s": round(self.start_s, 3),
            "target": self.target,
            **self.counts.as_dict(),
            "by_path": {path: counts.as_dict() for path, counts in sorted(self.by_path.items())},
        }


def tally(windows: list[Window], outcomes: Iterable[Outcome], run_start: float) -> Counts:
    """Add each outcome to the window it ended in (`windows` by start, the first at 0);
    the totals."""
    starts = [window.start_s for window in windows]
    totals = Counts()
    for outcome in outcomes:
        index = max(0, bisect.bisect_right(starts, outcome.answered_at - run_start) - 1)
        windows[index].add(outcome)
        totals.add(outcome)
    return totals


def _kinds(counts: Counts) -> str:
    shown = [f"{kind} ×{n}" for kind, n in counts.failures.most_common(SHOWN_KINDS)]
    others = len(counts.failures) - SHOWN_KINDS
    return "\n".join(shown + ([f"(+{others} more kinds)"] if others > 0 else []))


def table(title: str, windows: Sequence[Window], totals: Counts) -> Table:
    """The windows and the totals as a rich table."""
    grid = Table(title=title)
    for column in ("window", "at s", "target", "sent", *STATUSES, "failures by kind"):
        numeric = column in ("at s", "sent", *STATUSES)
        grid.add_column(column, justify="right" if numeric else "left")
    for window in windows:
        counts = window.counts
        grid.add_row(
            window.name,
            f"{window.start_s:.1f}",
            window.target,
            *(str(value) for value in _numbers(counts)),
            _kinds(counts),
        )
    grid.add_section()
    grid.add_row("total", "", "", *(str(value) for value in _numbers(totals)), _kinds(totals))
    return grid


def _numbers(counts: Counts) -> list[int]:
    return [counts.sent, *(getattr(counts, status) for status in STATUSES)]
