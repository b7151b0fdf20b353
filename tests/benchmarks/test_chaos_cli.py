"""`msq-bench chaos|soak` options (nothing is started)."""

from __future__ import annotations

import pytest

from msq.benchmarks.chaos_cli import parse_args
from msq.benchmarks.faults import FaultKind
from msq.benchmarks.probes import PATHS


def test_defaults() -> None:
    chaos = parse_args(["chaos"])
    assert chaos.faults == [kind.value for kind in FaultKind]
    assert (chaos.count, chaos.first_at, chaos.interval, chaos.stop_seconds) == (5, 10.0, 20.0, 8.0)
    assert (chaos.paths, chaos.concurrency, chaos.deadline, chaos.workers) == (PATHS, 4, 5.0, 2)
    assert chaos.duration is None and chaos.attach is None
    soak = parse_args(["soak"])
    assert (soak.duration, soak.sample_every) == (600.0, 10.0)


def test_attach_and_choices() -> None:
    args = parse_args(
        ["soak", "--attach", "42", "--grpc", "127.0.0.1:5500", "--rest", "http://127.0.0.1:1500"]
    )
    assert (args.attach, args.grpc, args.rest) == (42, "127.0.0.1:5500", "http://127.0.0.1:1500")
    args = parse_args(["chaos", "--faults", "broker-kill, grpc-kill", "--paths", "v2-rest"])
    assert (args.faults, args.paths) == (["broker-kill", "grpc-kill"], ("v2-rest",))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chaos", "--faults", "reboot"], "unknown ['reboot']"),
        (["chaos", "--faults", ","], "--faults needs a kind"),
        (["chaos", "--count", "-1"], "cannot be negative"),
        (["chaos", "--interval", "5", "--stop-seconds", "5"], "shorter than --interval"),
        (["chaos", "--deadline", "0"], "expected a positive number"),
        (["soak", "--paths", "ms-grpc,link"], "unknown ['link']"),
        (["soak", "--concurrency", "0"], "need at least one"),
        (["soak", "--attach", "42"], "--attach, --grpc and --rest go together"),
    ],
)
def test_bad_options_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
